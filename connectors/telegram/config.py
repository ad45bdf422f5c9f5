"""The bots of ``[channels.telegram]``: parsed and checked once, with errors naming the key."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from crm_core.contracts import Attribution

Mode = Literal["polling", "webhook"]
_KEY = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_TOKEN = re.compile(r"^\d{3,20}:[A-Za-z0-9_-]{10,100}$")
_PAYLOAD_FIELDS = {
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "funnel",
}
DEFAULT_MAX_FILE_BYTES = 20 * 1024 * 1024  # what the public Bot API lets getFile download
DEFAULT_FILE_RETRY_ATTEMPTS = 8  # 1 min, doubling, at most an hour: about 2 h in all
DEFAULT_POISON_ATTEMPTS = 5  # an update whose handling raised this often in a row is parked


class TelegramConfigError(ValueError):
    """A ``[channels.telegram]`` setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class StartLink:
    """What a ``/start <payload>`` deep link means: the lead's source and funnel."""

    attribution: Attribution
    funnel: str | None = None


@dataclass(frozen=True, slots=True)
class BotConfig:
    """One bot: a channel account of the Telegram channel."""

    key: str
    token: str = field(repr=False)
    mode: Mode = "polling"
    api_base: str | None = None
    secret_token: str | None = field(default=None, repr=False)
    webhook_url: str | None = None
    start_payloads: Mapping[str, StartLink] = field(default_factory=dict)
    start_prefixes: Mapping[str, StartLink] = field(default_factory=dict)
    polling_timeout: int = 25

    def start_link(self, payload: str) -> StartLink:
        """The meaning of a deep-link payload: an exact entry, else the longest prefix rule,
        else just the payload as the campaign of the ``telegram`` source."""
        exact = self.start_payloads.get(payload)
        if exact is not None:
            return exact
        for prefix in sorted(self.start_prefixes, key=len, reverse=True):
            if payload.startswith(prefix):
                rule = self.start_prefixes[prefix]
                a = rule.attribution
                campaign = a.utm_campaign or payload
                return StartLink(
                    Attribution(
                        utm_source=a.utm_source or "telegram",
                        utm_medium=a.utm_medium,
                        utm_campaign=campaign,
                        utm_content=a.utm_content,
                        utm_term=a.utm_term,
                    ),
                    rule.funnel,
                )
        return StartLink(Attribution(utm_source="telegram", utm_campaign=payload))


@dataclass(frozen=True, slots=True)
class TelegramConfig:
    bots: tuple[BotConfig, ...]
    media_dir: str = ""  # empty: the hub's shared media_dir
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    file_retry_attempts: int = DEFAULT_FILE_RETRY_ATTEMPTS  # a file that may heal, tried this often
    poison_attempts: int = DEFAULT_POISON_ATTEMPTS  # an update that keeps failing: then parked


def parse_config(table: Mapping[str, Any]) -> TelegramConfig:
    """``[channels.telegram]``: ``media_dir``, ``max_file_bytes``, ``file_retry_attempts``,
    ``poison_attempts`` and a list ``bots``."""
    known = {"bots", "media_dir", "max_file_bytes", "file_retry_attempts", "poison_attempts"}
    for name in table:
        if name not in known:
            raise TelegramConfigError(
                f"channels.telegram.{name}: unknown setting (known: {', '.join(sorted(known))})"
            )
    raw_bots = table.get("bots", [])
    if not isinstance(raw_bots, list) or not all(isinstance(b, Mapping) for b in raw_bots):
        raise TelegramConfigError("channels.telegram.bots: expected a list of tables")
    bots = tuple(_bot(f"channels.telegram.bots[{i}]", b) for i, b in enumerate(raw_bots))
    keys = [b.key for b in bots]
    for key in keys:
        if keys.count(key) > 1:
            raise TelegramConfigError(f"channels.telegram.bots: the key {key!r} is used twice")
    tokens = [b.token for b in bots]
    for index, bot in enumerate(bots):
        if tokens.index(bot.token) != index:
            # two consumers of one bot would steal each other's updates (409 Conflict)
            raise TelegramConfigError(
                f"channels.telegram.bots[{index}].token: the same bot as "
                f"bots[{tokens.index(bot.token)}]; one bot is consumed by one entry"
            )
    media_dir = table.get("media_dir", "")
    if not isinstance(media_dir, str) or ("media_dir" in table and not media_dir):
        raise TelegramConfigError("channels.telegram.media_dir: expected a folder path")
    limit = table.get("max_file_bytes", DEFAULT_MAX_FILE_BYTES)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
        raise TelegramConfigError("channels.telegram.max_file_bytes: expected a positive integer")
    attempts = table.get("file_retry_attempts", DEFAULT_FILE_RETRY_ATTEMPTS)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts <= 0:
        raise TelegramConfigError(
            "channels.telegram.file_retry_attempts: expected a positive integer"
        )
    poison = table.get("poison_attempts", DEFAULT_POISON_ATTEMPTS)
    if not isinstance(poison, int) or isinstance(poison, bool) or poison <= 0:
        raise TelegramConfigError("channels.telegram.poison_attempts: expected a positive integer")
    return TelegramConfig(bots, media_dir, limit, attempts, poison)


def _bot(where: str, raw: Mapping[str, Any]) -> BotConfig:
    known = {
        "key",
        "token",
        "mode",
        "api_base",
        "secret_token",
        "webhook_url",
        "start_payloads",
        "start_prefixes",
        "polling_timeout",
    }
    for name in raw:
        if name not in known:
            raise TelegramConfigError(
                f"{where}.{name}: unknown setting (known: {', '.join(sorted(known))})"
            )
    key = raw.get("key")
    if not isinstance(key, str) or not _KEY.match(key):
        raise TelegramConfigError(f"{where}.key: expected a short name like 'salesbot'")
    token = raw.get("token")
    if not isinstance(token, str) or not _TOKEN.match(token):
        # never echo the value: it is a secret
        raise TelegramConfigError(f"{where}.token: expected a bot token like '123456:ABC-...'")
    mode = raw.get("mode", "polling")
    if mode not in ("polling", "webhook"):
        raise TelegramConfigError(f"{where}.mode: expected 'polling' or 'webhook'")
    api_base = _optional_str(where, raw, "api_base")
    if api_base is not None and not api_base.startswith(("http://", "https://")):
        raise TelegramConfigError(f"{where}.api_base: expected an http(s) URL")
    secret = _optional_str(where, raw, "secret_token")
    if mode == "webhook" and (secret is None or not re.fullmatch(r"[A-Za-z0-9_-]{16,256}", secret)):
        raise TelegramConfigError(
            f"{where}.secret_token: webhook mode needs 16-256 characters of A-Z a-z 0-9 _ -"
        )
    timeout = raw.get("polling_timeout", 25)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 0 <= timeout <= 50:
        raise TelegramConfigError(f"{where}.polling_timeout: expected seconds between 0 and 50")
    return BotConfig(
        key=key,
        token=token,
        mode=mode,
        api_base=api_base.rstrip("/") if api_base else None,
        secret_token=secret,
        webhook_url=_optional_str(where, raw, "webhook_url"),
        start_payloads=_links(f"{where}.start_payloads", raw.get("start_payloads", {})),
        start_prefixes=_links(f"{where}.start_prefixes", raw.get("start_prefixes", {})),
        polling_timeout=timeout,
    )


def _optional_str(where: str, raw: Mapping[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is not None and (not isinstance(value, str) or not value):
        raise TelegramConfigError(f"{where}.{name}: expected a non-empty string")
    return value


def _links(where: str, raw: Any) -> dict[str, StartLink]:
    if not isinstance(raw, Mapping):
        raise TelegramConfigError(f"{where}: expected a table of payload = {{utm_source = ...}}")
    links: dict[str, StartLink] = {}
    for payload, spec in raw.items():
        if not isinstance(spec, Mapping):
            raise TelegramConfigError(f"{where}.{payload}: expected a table")
        for name, value in spec.items():
            if name not in _PAYLOAD_FIELDS:
                raise TelegramConfigError(
                    f"{where}.{payload}.{name}: unknown field "
                    f"(known: {', '.join(sorted(_PAYLOAD_FIELDS))})"
                )
            if not isinstance(value, str) or not value:
                raise TelegramConfigError(f"{where}.{payload}.{name}: expected a string")
        links[str(payload)] = StartLink(
            Attribution(
                utm_source=spec.get("utm_source"),
                utm_medium=spec.get("utm_medium"),
                utm_campaign=spec.get("utm_campaign"),
                utm_content=spec.get("utm_content"),
                utm_term=spec.get("utm_term"),
            ),
            spec.get("funnel"),
        )
    return links
