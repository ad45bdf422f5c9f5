"""The ``[channels.webhooks]`` table: one entry per inbound source, checked once at start.

```toml
[channels.webhooks]
dedup_window_seconds = 600        # a double submit without a key, within this, is one lead
signature_tolerance_seconds = 300
disable_after_failures = 30       # outbound: a subscription failing this often in a row ...
disable_after_hours = 24          # ... and for this long is turned off (its deliveries wait)
delivery_retention_days = 7       # outbound: an undelivered webhook older than this expires
delivery_timeout_seconds = 10
allow_private_targets = false     # outbound: true lets subscriptions reach private addresses
lead_retry_attempts = 8           # Meta: a lead the Graph API could not give, tried this often
sources = [
  {key = "landing-pg", kind = "form", secret = "...", signing = "token", funnel = "landing",
   fields = {name = "your_name", phone = "tel"}},
  {key = "tilda-main", kind = "tilda", api_key = "...", api_key_name = "apikey"},
  {key = "google", kind = "google_ads", google_key = "..."},
  {key = "vk-group", kind = "vk", confirmation = "a1b2c3", secret = "..."},
  {key = "meta", kind = "meta", app_secret = "...", verify_token = "...", access_token = "...",
   graph_base = "https://graph.facebook.com/v21.0"},
  {key = "yaforms", kind = "yandex_forms", secret = "..."},
  {key = "zadarma", kind = "zadarma", api_secret = "..."},
  {key = "partner", kind = "standard", secret = "whsec_..."},
]
```
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# URL path segment → kind.
KINDS = {
    "forms": "form",
    "tilda": "tilda",
    "google-ads": "google_ads",
    "vk": "vk",
    "meta": "meta",
    "yandex-forms": "yandex_forms",
    "zadarma": "zadarma",
    "standard": "standard",
}
_REQUIRED = {
    "form": ("secret",),
    "tilda": (),
    "google_ads": ("google_key",),
    "vk": ("confirmation", "secret"),
    "meta": ("app_secret", "verify_token", "access_token"),
    "yandex_forms": ("secret",),
    "zadarma": ("api_secret",),
    "standard": ("secret",),
}
_OPTIONAL = {
    "form": ("signing",),
    "tilda": ("api_key", "api_key_name"),
    "google_ads": (),
    "vk": ("group_id",),
    "meta": ("graph_base",),
    "yandex_forms": (),
    "zadarma": (),
    "standard": (),
}
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
DEFAULT_GRAPH_BASE = "https://graph.facebook.com/v21.0"


class SourceConfigError(ValueError):
    """The webhooks table cannot be used; the message names the bad key."""


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    kind: str
    funnel: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)

    def option(self, name: str, default: str = "") -> str:
        return self.options.get(name, default)

    def __repr__(self) -> str:  # never the secrets
        return f"Source(key={self.key!r}, kind={self.kind!r}, funnel={self.funnel!r})"


@dataclass(frozen=True, slots=True)
class HooksConfig:
    sources: Mapping[str, Source] = field(default_factory=dict)
    dedup_window_seconds: int = 600
    signature_tolerance_seconds: int = 300
    disable_after_failures: int = 30
    delivery_timeout_seconds: int = 10
    allow_private_targets: bool = False
    disable_after_hours: int = 24
    delivery_retention_days: int = 7
    lead_retry_attempts: int = 8


def load_config(table: Mapping[str, Any] | None) -> HooksConfig:
    """Check ``settings.channels["webhooks"]``; raises :class:`SourceConfigError`."""
    if not table:
        return HooksConfig()
    where = "channels.webhooks"
    known = {"sources", "dedup_window_seconds", "signature_tolerance_seconds"}
    known |= {"disable_after_failures", "delivery_timeout_seconds", "allow_private_targets"}
    known |= {"disable_after_hours", "delivery_retention_days"}
    known |= {"lead_retry_attempts"}
    for name in table:
        if name not in known:
            raise SourceConfigError(
                f"{where}.{name}: unknown key (known: {', '.join(sorted(known))})"
            )
    window = _positive(table, "dedup_window_seconds", 600, where)
    tolerance = _positive(table, "signature_tolerance_seconds", 300, where)
    disable_after = _positive(table, "disable_after_failures", 30, where)
    timeout = _positive(table, "delivery_timeout_seconds", 10, where)
    lead_retries = _positive(table, "lead_retry_attempts", 8, where)
    allow_private = table.get("allow_private_targets", False)
    if not isinstance(allow_private, bool):
        raise SourceConfigError(f"{where}.allow_private_targets: expected true or false")
    raw_sources = table.get("sources", [])
    if not isinstance(raw_sources, list):
        raise SourceConfigError(f"{where}.sources: expected a list of tables")
    sources: dict[str, Source] = {}
    for index, raw in enumerate(raw_sources):
        source = _source(raw, f"{where}.sources[{index}]")
        if source.key in sources:
            raise SourceConfigError(f"{where}.sources[{index}].key: {source.key!r} is used twice")
        sources[source.key] = source
    return HooksConfig(
        sources=sources,
        dedup_window_seconds=window,
        signature_tolerance_seconds=tolerance,
        disable_after_failures=disable_after,
        delivery_timeout_seconds=timeout,
        allow_private_targets=allow_private,
        lead_retry_attempts=lead_retries,
        disable_after_hours=_positive(table, "disable_after_hours", 24, where),
        delivery_retention_days=_positive(table, "delivery_retention_days", 7, where),
    )


def _positive(table: Mapping[str, Any], name: str, default: int, where: str) -> int:
    value = table.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SourceConfigError(f"{where}.{name}: expected a positive integer")
    return value


def _source(raw: Any, where: str) -> Source:
    if not isinstance(raw, Mapping):
        raise SourceConfigError(f"{where}: expected a table")
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise SourceConfigError(f"{where}.key: 1-100 letters, digits, '_', '.' or '-'")
    kind = raw.get("kind")
    if kind not in _REQUIRED:
        raise SourceConfigError(f"{where}.kind: one of {', '.join(sorted(_REQUIRED))}")
    allowed = {"key", "kind", "funnel", "fields", *_REQUIRED[kind], *_OPTIONAL[kind]}
    options: dict[str, str] = {}
    for name, value in raw.items():
        if name not in allowed:
            raise SourceConfigError(
                f"{where}.{name}: unknown for kind {kind!r} (known: {', '.join(sorted(allowed))})"
            )
        if name in ("key", "kind", "funnel", "fields"):
            continue
        if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
            raise SourceConfigError(f"{where}.{name}: expected a non-empty string")
        options[name] = str(value)
    for name in _REQUIRED[kind]:
        if name not in options:
            raise SourceConfigError(f"{where}.{name}: required for kind {kind!r}")
    if kind == "form" and options.setdefault("signing", "token") not in ("token", "hmac"):
        raise SourceConfigError(f"{where}.signing: 'token' or 'hmac'")
    if kind == "meta":
        options.setdefault("graph_base", DEFAULT_GRAPH_BASE)
    funnel = raw.get("funnel")
    if funnel is not None and (not isinstance(funnel, str) or not funnel):
        raise SourceConfigError(f"{where}.funnel: expected a funnel code")
    fields = raw.get("fields", {})
    if not isinstance(fields, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise SourceConfigError(f"{where}.fields: expected a table of role = field name")
    return Source(key, kind, funnel, dict(fields), options)
