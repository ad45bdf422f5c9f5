"""The website chat widget: its settings, its socket protocol, its limits and its sender."""
