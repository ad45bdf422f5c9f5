"""``[channels.sip]``: the lines, each a channel account (pure: no pjsua2 here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal


class SipConfigError(ValueError):
    """A SIP setting that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class LineConfig:
    key: str
    mode: Literal["listen", "register"] = "listen"
    host: str = "127.0.0.1"  # the address to bind (and, listening, to be called on)
    port: int = 5060
    registrar: str | None = None  # sip:pbx.example.com
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    domain: str | None = None  # of our address of record; the registrar's host by default
    managers: Mapping[int, str] = field(default_factory=dict)  # manager id -> SIP URI
    ring_timeout_seconds: float = 20.0
    callback_sla_minutes: int = 15
    greeting_wav: str | None = None
    voicemail_max_seconds: float = 60.0
    dial_template: str | None = None  # click-to-call: "sip:{number}@pbx.example.com"
    plan_timeout_seconds: float = 5.0
    register_retry_seconds: int = 60  # after the first retry (5 s), plus up to 10 s jitter

    def dial_uri(self, number: str) -> str:
        if self.dial_template:
            return self.dial_template.format(number=number)
        return f"sip:{number}@{self.domain or self._registrar_host() or self.host}"

    def _registrar_host(self) -> str | None:
        if not self.registrar:
            return None
        return self.registrar.split(":", 1)[-1].split(";", 1)[0]

    def address_of_record(self) -> str:
        if self.mode == "register":
            return f"sip:{self.user or self.key}@{self.domain or self._registrar_host()}"
        return f"sip:{self.key}@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class SipConfig:
    lines: tuple[LineConfig, ...]
    media_dir: str = ""  # empty: the hub's shared media_dir
    log_level: int = 1
    # pjsua call slots for all lines together; a call takes two (the client's and the
    # manager's leg). pjsua caps it at PJSUA_MAX_CALLS, fixed when pjsua2 was built.
    max_calls: int = 64


_FLOATS = ("ring_timeout_seconds", "voicemail_max_seconds", "plan_timeout_seconds")
_INTS = ("port", "callback_sla_minutes", "register_retry_seconds")
_TEXTS = ("host", "registrar", "user", "password", "domain", "greeting_wav", "dial_template")


def parse_config(table: Mapping[str, Any]) -> SipConfig:
    lines = table.get("lines", [])
    if not isinstance(lines, list) or not lines:
        raise SipConfigError("channels.sip.lines: a list of at least one line is needed")
    parsed = tuple(_line(spec, f"channels.sip.lines[{i}]") for i, spec in enumerate(lines))
    keys = [line.key for line in parsed]
    if len(set(keys)) != len(keys):
        raise SipConfigError("channels.sip.lines: each line needs its own key")
    try:
        max_calls = int(table.get("max_calls", 64))
    except (TypeError, ValueError) as exc:
        raise SipConfigError(f"channels.sip.max_calls: {exc}") from None
    if max_calls < 2:
        raise SipConfigError("channels.sip.max_calls: at least 2 (one call takes two slots)")
    return SipConfig(
        parsed, str(table.get("media_dir", "")), int(table.get("log_level", 1)), max_calls
    )


def _line(spec: Any, where: str) -> LineConfig:
    if not isinstance(spec, Mapping):
        raise SipConfigError(f"{where}: a table is needed")
    key = spec.get("key")
    if not isinstance(key, str) or not key:
        raise SipConfigError(f"{where}.key: a non-empty string is needed")
    mode = spec.get("mode", "listen")
    if mode not in ("listen", "register"):
        raise SipConfigError(f"{where}.mode: listen or register")
    values: dict[str, Any] = {"key": key, "mode": mode}
    try:
        for name in _FLOATS:
            if name in spec:
                values[name] = float(spec[name])
        for name in _INTS:
            if name in spec:
                values[name] = int(spec[name])
        managers = spec.get("managers", {})
        values["managers"] = {int(k): str(v) for k, v in dict(managers).items()}
    except (TypeError, ValueError) as exc:
        raise SipConfigError(f"{where}: {exc}") from None
    for name in _TEXTS:
        if spec.get(name) is not None:
            values[name] = str(spec[name])
    if mode == "register" and not values.get("registrar"):
        raise SipConfigError(f"{where}.registrar: a register line needs its registrar")
    return LineConfig(**values)
