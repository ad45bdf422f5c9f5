"""Channel connectors: each turns its channel's events into ``crm_core.contracts.InboundMessage``.

Connectors import only :mod:`crm_core.contracts` and their channel's SDK, never the ORM.
"""
