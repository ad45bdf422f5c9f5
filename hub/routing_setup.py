"""The routing in force: teams, rules and funnel automation, from YAML or the API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from crm_core.automation import Automation, AutomationError, load_automation
from crm_core.text import first_problem
from hub.settings import Settings, SettingsError
from routing import Candidate, ConfigError, Decision, RoutingConfig, RoutingEvent, load_config
from routing import route as route_by

DEFAULT_ROUTING = Path(__file__).with_name("routing_default.yaml")


class RoutingDocumentError(ValueError):
    """A routing document that cannot be used; ``where`` names the place."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message)
        self.where = where


@dataclass
class RoutingState:
    """What ingest, timers and automation read; an accepted edit replaces it whole."""

    config: RoutingConfig
    automation: Automation
    document: dict[str, Any]
    source: str
    version: int | None = None  # the stored version in force; None: the file's

    def route(self, event: RoutingEvent, candidates: Sequence[Candidate]) -> Decision:
        return route_by(event, candidates, self.config)

    def replace(self, document: dict[str, Any], source: str, version: int | None = None) -> None:
        config, automation = parse(document)
        self.config, self.automation, self.document, self.source, self.version = (
            config,
            automation,
            document,
            source,
            version,
        )


def parse(document: Any) -> tuple[RoutingConfig, Automation]:
    """Check everything before anything is used: nothing is half-applied."""
    if not isinstance(document, dict):
        raise RoutingDocumentError("", "expected a mapping with teams and rules")
    unstorable = first_problem(document)
    if unstorable is not None:  # it could not be stored, nor the teams it names
        raise RoutingDocumentError(unstorable[0], f"{unstorable[0]}: {unstorable[1]}")
    try:
        return load_config(document), load_automation(document.get("automation"))
    except ConfigError as exc:
        raise RoutingDocumentError(exc.where, str(exc)) from exc
    except AutomationError as exc:
        raise RoutingDocumentError(exc.where, str(exc)) from exc


def load_routing(settings: Settings) -> RoutingState:
    """The routing file's (or the shipped default's); errors name the place."""
    path = Path(settings.routing_file) if settings.routing_file else DEFAULT_ROUTING
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read the routing file {path}: {exc}") from exc
    document = _plain_keys(document)
    try:
        config, automation = parse(document)
    except RoutingDocumentError as exc:
        raise SettingsError(f"{path}: {exc}") from exc
    return RoutingState(config, automation, document, f"file:{path}")


def _plain_keys(value: Any) -> Any:
    """YAML 1.1 reads a bare ``on:`` key as true; keep the document JSON-shaped."""
    if isinstance(value, dict):
        return {("on" if key is True else key): _plain_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_keys(item) for item in value]
    return value
