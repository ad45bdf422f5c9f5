"""``[channels.site_chat]``: the website widgets, each a channel account (pure).

```toml
[[channels.site_chat.widgets]]
key = "cloud-site"                 # the channel account; data-key in the tag
allowed_origins = ["https://cloud.example.com"]
secret = "…"                       # HMAC key of verified visitors' user_hash; never shown
title = "Cloud Example"
greeting = { en = "Hi! How can we help?", ru = "Здравствуйте! Чем помочь?" }
```

Secrets never appear in ``repr`` (and so in logs) or in what the widget is sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

FieldMode = Literal["off", "optional", "required"]
_MODES: tuple[FieldMode, ...] = ("off", "optional", "required")
PRECHAT_FIELDS = ("name", "phone", "email")
LANGUAGES = ("auto", "ru", "en")
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
DEFAULT_FILE_TYPES = (
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.ms-excel",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/zip",
)


class WidgetConfigError(ValueError):
    """A widget setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class Limits:
    """What one visitor, and one address, may do."""

    messages_per_minute: int = 20  # per visitor
    sockets_per_visitor: int = 5  # open tabs of one visitor
    sockets_per_address: int = 50  # open sockets from one client address
    sessions_per_minute: int = 10  # new visitors from one client address
    uploads_per_minute: int = 10  # per visitor
    max_message_chars: int = 4000
    max_file_bytes: int = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WidgetConfig:
    key: str
    allowed_origins: tuple[str, ...]
    secret: str = field(default="", repr=False)
    title: str = "Chat"
    greeting: Mapping[str, str] = field(default_factory=dict)  # by language
    color: str = "#1f6feb"
    position: Literal["right", "left"] = "right"
    language: str = "auto"
    prechat: Mapping[str, FieldMode] = field(
        default_factory=lambda: {"name": "optional", "phone": "off", "email": "optional"}
    )
    team: str | None = None  # whose working hours the widget shows
    require_verified: bool = False
    # Replies to a visitor who left an email and has not come back within
    # ``email_after_minutes`` go out by mail from this mailbox (empty: never).
    email_mailbox: str = ""
    email_after_minutes: int = 15
    file_types: tuple[str, ...] = DEFAULT_FILE_TYPES
    limits: Limits = field(default_factory=Limits)

    def allows(self, origin: str | None) -> bool:
        """Whether a page of ``origin`` may show this widget."""
        return origin is not None and normalized_origin(origin) in self.allowed_origins

    def greeting_in(self, language: str) -> str:
        return self.greeting.get(language) or next(iter(self.greeting.values()), "")


@dataclass(frozen=True, slots=True)
class SiteChatConfig:
    widgets: tuple[WidgetConfig, ...]
    follow_up_poll_seconds: float = 30.0  # how often unseen replies are looked for

    def widget(self, key: str) -> WidgetConfig | None:
        return next((w for w in self.widgets if w.key == key), None)


def normalized_origin(origin: str) -> str:
    """``scheme://host[:port]``, lower-cased, without a default port; "" if not an origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return ""
    default = {"http": 80, "https": 443}[parts.scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{host}{suffix}"


def parse_site_chat(raw: object, where: str = "channels.site_chat") -> SiteChatConfig:
    if not isinstance(raw, Mapping):
        raise WidgetConfigError(f"{where}: expected a table with [[{where}.widgets]]")
    items = raw.get("widgets", [])
    if not isinstance(items, Sequence) or isinstance(items, str | bytes):
        raise WidgetConfigError(f"{where}.widgets: expected a list of widget tables")
    widgets = tuple(_widget(item, f"{where}.widgets[{i}]") for i, item in enumerate(items))
    keys = [w.key for w in widgets]
    for key in keys:
        if keys.count(key) > 1:
            raise WidgetConfigError(f"{where}.widgets: the key {key!r} is used twice")
    poll = raw.get("follow_up_poll_seconds", 30.0)
    if not isinstance(poll, int | float) or isinstance(poll, bool) or poll <= 0:
        raise WidgetConfigError(f"{where}.follow_up_poll_seconds: expected a positive number")
    return SiteChatConfig(widgets, float(poll))


def _widget(raw: object, where: str) -> WidgetConfig:
    if not isinstance(raw, Mapping):
        raise WidgetConfigError(f"{where}: expected a table")
    known = set(WidgetConfig.__dataclass_fields__)
    for name in raw:
        if name not in known:
            raise WidgetConfigError(f"{where}.{name}: unknown setting")
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise WidgetConfigError(f"{where}.key: expected 1-64 of A-Z a-z 0-9 _ -")
    origins = raw.get("allowed_origins")
    if not isinstance(origins, list) or not origins or not all(isinstance(o, str) for o in origins):
        raise WidgetConfigError(
            f"{where}.allowed_origins: expected a list of origins, e.g. ['https://example.com']"
        )
    normalized = []
    for origin in origins:
        found = normalized_origin(origin)
        if not found:
            raise WidgetConfigError(
                f"{where}.allowed_origins: {origin!r} is not an origin (scheme://host[:port])"
            )
        normalized.append(found)
    secret = _text(raw, "secret", where, "")
    require_verified = raw.get("require_verified", False)
    if not isinstance(require_verified, bool):
        raise WidgetConfigError(f"{where}.require_verified: expected true or false")
    if require_verified and not secret:
        raise WidgetConfigError(f"{where}.secret: require_verified needs the widget's secret")
    color = _text(raw, "color", where, "#1f6feb")
    if not _COLOR.match(color):
        raise WidgetConfigError(f"{where}.color: expected #rrggbb")
    position = _text(raw, "position", where, "right")
    if position not in ("right", "left"):
        raise WidgetConfigError(f"{where}.position: expected right or left")
    language = _text(raw, "language", where, "auto")
    if language not in LANGUAGES:
        raise WidgetConfigError(f"{where}.language: expected one of {', '.join(LANGUAGES)}")
    return WidgetConfig(
        key=key,
        allowed_origins=tuple(normalized),
        secret=secret,
        title=_text(raw, "title", where, "Chat")[:100],
        greeting=_greeting(raw.get("greeting", {}), f"{where}.greeting"),
        color=color,
        position="left" if position == "left" else "right",
        language=language,
        prechat=_prechat(raw.get("prechat", {}), f"{where}.prechat"),
        team=_text(raw, "team", where, "") or None,
        require_verified=require_verified,
        email_mailbox=_text(raw, "email_mailbox", where, ""),
        email_after_minutes=_positive(raw, "email_after_minutes", where, 15),
        file_types=_file_types(raw.get("file_types"), f"{where}.file_types"),
        limits=_limits(raw.get("limits", {}), f"{where}.limits"),
    )


def _text(raw: Mapping[str, Any], key: str, where: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise WidgetConfigError(f"{where}.{key}: expected a string")
    return value.strip()


def _positive(raw: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise WidgetConfigError(f"{where}.{key}: expected a positive whole number")
    return value


def _greeting(raw: object, where: str) -> dict[str, str]:
    if isinstance(raw, str):
        return {"en": raw, "ru": raw}
    if not isinstance(raw, Mapping) or not all(
        k in ("ru", "en") and isinstance(v, str) for k, v in raw.items()
    ):
        raise WidgetConfigError(f"{where}: expected a text, or a table of ru and en texts")
    return {str(k): str(v)[:500] for k, v in raw.items()}


def _prechat(raw: object, where: str) -> dict[str, FieldMode]:
    if not isinstance(raw, Mapping):
        raise WidgetConfigError(f"{where}: expected a table like {{ email = 'required' }}")
    modes: dict[str, FieldMode] = {"name": "optional", "phone": "off", "email": "optional"}
    for name, mode in raw.items():
        if name not in PRECHAT_FIELDS:
            raise WidgetConfigError(f"{where}.{name}: the fields are name, phone and email")
        if mode not in _MODES:
            raise WidgetConfigError(f"{where}.{name}: expected off, optional or required")
        modes[str(name)] = mode
    return modes


def _file_types(raw: object, where: str) -> tuple[str, ...]:
    if raw is None:
        return DEFAULT_FILE_TYPES
    if not isinstance(raw, list) or not all(isinstance(v, str) and "/" in v for v in raw):
        raise WidgetConfigError(f"{where}: expected a list of media types like 'image/png'")
    return tuple(v.lower() for v in raw)


def _limits(raw: object, where: str) -> Limits:
    if not isinstance(raw, Mapping):
        raise WidgetConfigError(f"{where}: expected a table")
    defaults = Limits()
    values: dict[str, int] = {}
    for name, value in raw.items():
        if not hasattr(defaults, str(name)):
            raise WidgetConfigError(f"{where}.{name}: unknown limit")
        values[str(name)] = _positive(raw, str(name), where, 1)
        del value
    return Limits(**values)
