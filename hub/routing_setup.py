"""Loading the routing configuration (YAML) that the ingest service routes by."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import yaml

from crm_core.automation import Automation, AutomationError, load_automation
from crm_core.inbound import Router
from hub.settings import Settings, SettingsError
from routing import ConfigError, RoutingConfig, load_config, route

DEFAULT_ROUTING = Path(__file__).with_name("routing_default.yaml")


def load_routing(settings: Settings) -> tuple[RoutingConfig, Automation]:
    """Teams, rules and the funnel automation, from one YAML file; errors name the place."""
    path = Path(settings.routing_file) if settings.routing_file else DEFAULT_ROUTING
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read the routing file {path}: {exc}") from exc
    if not isinstance(document, dict):
        raise SettingsError(f"{path}: expected teams and rules")
    try:
        return load_config(document), load_automation(document.get("automation"))
    except (ConfigError, AutomationError) as exc:
        raise SettingsError(f"{path}: {exc}") from exc


def router(config: RoutingConfig) -> Router:
    return partial(route, config=config)
