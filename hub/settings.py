"""Settings: defaults that work, then a TOML file, then ``OMNIHUB_*`` environment variables.

Built once by the CLI and passed in; nothing below ``hub`` reads the environment.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "OMNIHUB_"


class SettingsError(ValueError):
    """A setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str = "sqlite:///omnihub.sqlite3"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    access_log: bool = False
    migrate_on_start: bool = True
    default_region: str = "RU"
    timezone: str = "Europe/Moscow"  # the company's: reports' days and months
    default_funnel: str = "consultation"
    funnel_by_channel: Mapping[str, str] = field(default_factory=dict)
    # what a deal may be about: code -> name, e.g. pg-cluster = "Managed PostgreSQL"
    # (ABC runs by product as well as by client); env: pg-cluster=Managed PostgreSQL,...
    products: Mapping[str, str] = field(default_factory=dict)
    first_task_due_minutes: int = 15
    # tracking numbers: a call to one is a touch of its campaign (crm_core.tracking), e.g.
    # [tracking_numbers] "+74951234567" = { utm_source = "yandex", utm_campaign = "pg" };
    # from the environment as JSON (OMNIHUB_TRACKING_NUMBERS)
    tracking_numbers: Mapping[str, Any] = field(default_factory=dict)
    max_body_bytes: int = 1_048_576
    outbox_max_attempts: int = 12
    outbox_poll_seconds: float = 1.0
    token_cache_seconds: float = 10.0
    timer_poll_seconds: float = 5.0
    routing_poll_seconds: float = 5.0  # how soon a routing stored by another process is followed
    redis_url: str = ""  # scaled mode (several processes on PostgreSQL); empty: one process
    lease_seconds: float = 10.0  # with redis_url: a dead worker's bot/mailbox is taken over then
    media_dir: str = "omnihub-media"  # files clients send; a channel may name its own
    session_hours: int = 12  # how long an inbox login lasts
    # Secure cookies: browsers still send them to http://localhost and 127.0.0.1; turn off
    # only for a plain-HTTP deployment on another host (and then, better, add TLS).
    session_cookie_secure: bool = True
    login_attempts: int = 5  # failed logins per email (x4 per address) ...
    login_window_minutes: int = 15  # ... within this window before 429
    routing_file: str = ""  # YAML rules, teams and queues; empty: the shipped default
    # Who may read GET /metrics without an admin's token or session: client addresses or
    # networks, comma separated (empty: nobody; admins always may).
    metrics_allow_from: str = "127.0.0.1,::1"
    # Reverse proxies whose X-Forwarded-For names the client (hub/addresses.py); empty: none
    trusted_proxies: str = ""
    # The hub's own address (https://crm.example.com): links in the mail it sends
    public_url: str = ""
    # The first run (hub/first_run.py): how long a start's one-time setup link works
    setup_link_minutes: int = 60
    # The Monday letter (hub/weekly_letter.py): each head of sales gets the past week's
    # figures from this [channels.email] mailbox (empty: no letters), on this day
    # (mon..sun) at this time ("09:00") in `timezone`.
    weekly_letter_mailbox: str = ""
    weekly_letter_day: str = "mon"
    weekly_letter_time: str = "09:00"
    # One table per channel, read by that channel's own setup module in hub/, e.g.
    # [channels.telegram] ... ; from the environment as JSON (OMNIHUB_CHANNELS).
    channels: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Defaults, overridden by the TOML file at ``path``, overridden by the environment."""
    environ = os.environ if env is None else env
    values: dict[str, Any] = {}
    path = path or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            with open(path, "rb") as handle:
                document = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read the configuration file {path}: {exc}") from exc
        for key, value in document.items():
            values[key] = _check(key, value, f"{path}: {key}")
    for name in _FIELDS:
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _from_text(name, raw)
    return Settings(**values)


def _check(name: str, value: Any, where: str) -> Any:
    spec = _FIELDS.get(name)
    if spec is None:
        raise SettingsError(f"{where}: unknown setting (known: {', '.join(sorted(_FIELDS))})")
    default = spec.default if spec.default is not dataclasses.MISSING else {}
    expected: type = type(default)
    if expected is float and isinstance(value, int):
        value = float(value)
    if name == "channels":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) for v in value.values()
        ):
            raise SettingsError(
                f"{where}: expected one table per channel, e.g. [channels.telegram]"
            )
        return dict(value)
    if name == "tracking_numbers":
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) for v in value.values()
        ):
            raise SettingsError(
                f'{where}: expected one table per number, e.g. "+74951234567" = '
                '{ utm_source = "yandex", utm_campaign = "spring" }'
            )
        return {str(k): dict(v) for k, v in value.items()}
    if isinstance(default, Mapping):
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise SettingsError(f"{where}: expected a table of strings")
        return dict(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise SettingsError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def _from_text(name: str, raw: str) -> Any:
    where = ENV_PREFIX + name.upper()
    spec = _FIELDS[name]
    default = spec.default if spec.default is not dataclasses.MISSING else {}
    if name in ("channels", "tracking_numbers"):
        try:
            return _check(name, json.loads(raw), where)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{where}: not valid JSON: {exc}") from exc
    try:
        if isinstance(default, bool):
            if raw.lower() not in {"1", "0", "true", "false", "yes", "no", "on", "off"}:
                raise ValueError(raw)
            return raw.lower() in {"1", "true", "yes", "on"}
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, Mapping):
            # channel=funnel,channel=funnel
            pairs = [item.split("=", 1) for item in raw.split(",") if item.strip()]
            return {k.strip(): v.strip() for k, v in pairs}
    except ValueError as exc:
        raise SettingsError(f"{where}: cannot read {raw!r} as {type(default).__name__}") from exc
    return raw
