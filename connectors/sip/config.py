"""``[channels.sip]``: the lines, each a channel account (pure: no pjsua2 here).

Network settings are per line, because pjsua keeps them per transport and account: the
address advertised in Contact, Via and the SDP (``public_address``, else ``host``), the
RTP ports (``rtp_port_min``/``rtp_port_max``), NAT handling of a register line
(``contact_rewrite``, ``keepalive_seconds``) and who may call (``allow_from``). Answered
calls are recorded unless ``record_calls = false``; ``recording_retention_days`` (90; 0:
forever) is how long the recordings are kept.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_WILDCARDS = ("", "0.0.0.0", "::")  # noqa: S104 (names, not binds)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
KEEPALIVE_BEHIND_NAT = 15  # seconds: keepalive_seconds when contact_rewrite is on
RETENTION_DAYS = 90  # recording_retention_days by default
MAX_RETENTION_DAYS = 36_500


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
    # Advertised in Contact, Via and the SDP (c=, o=) instead of ``host`` (a NAT's address).
    public_address: str | None = None
    # RTP ports of the calls (RTCP takes the next port): both or neither; pjsua's own
    # default is 4000 upward, without a limit.
    rtp_port_min: int | None = None
    rtp_port_max: int | None = None
    # A register line behind NAT: Contact, Via and the SDP take the address the registrar
    # saw (received/rport); off unless asked. Keep-alives hold the NAT binding open.
    contact_rewrite: bool = False
    keepalive_seconds: int = 0  # register lines: a CRLF to the registrar every N s; 0: none
    allow_from: tuple[Network, ...] = ()  # who may send the line requests; empty: anyone
    # Answered calls are recorded (both sides, one WAV) and attached to the call; the
    # recordings are deleted from the file store after this many days (0: kept forever).
    record_calls: bool = True
    recording_retention_days: int = 90

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
        return f"sip:{self.key}@{self.public_address or self.host}:{self.port}"

    @property
    def media_bound_address(self) -> str:
        """Where the calls' RTP sockets bind: the line's ``host`` (empty: every address)."""
        return "" if self.host in _WILDCARDS else self.host

    def allows(self, address: str) -> bool:
        """``address`` (``1.2.3.4``, ``1.2.3.4:5060``, ``[::1]:5060``) may send requests."""
        if not self.allow_from:
            return True
        ip = source_ip(address)
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.allow_from)


def source_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP of a peer address as pjsua prints it (port and brackets optional)."""
    text = address.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


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
_PORTS = 4  # a call's RTP and RTCP ports, for the client's leg and the manager's


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
    values.update(_network(spec, where, mode))
    values.update(_recording(spec, where))
    return LineConfig(**values)


def _recording(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Whether answered calls are recorded, and for how many days recordings are kept."""
    record = _flag(spec.get("record_calls", True), f"{where}.record_calls")
    days = spec.get("recording_retention_days", RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int):
        raise SipConfigError(
            f"{where}.recording_retention_days: a whole number of days (0: kept forever), "
            f"not {days!r}"
        )
    if not 0 <= days <= MAX_RETENTION_DAYS:
        raise SipConfigError(
            f"{where}.recording_retention_days: 0 (kept forever) to {MAX_RETENTION_DAYS}, "
            f"not {days}"
        )
    return {"record_calls": record, "recording_retention_days": days}


def _network(spec: Mapping[str, Any], where: str, mode: str) -> dict[str, Any]:
    """The line's address, RTP ports, NAT handling and allow-list, each checked."""
    values: dict[str, Any] = {}
    public = spec.get("public_address")
    if public is not None:
        values["public_address"] = _public_address(public, f"{where}.public_address")
    low, high = spec.get("rtp_port_min"), spec.get("rtp_port_max")
    if (low is None) != (high is None):
        raise SipConfigError(f"{where}.rtp_port_min, rtp_port_max: set both or neither")
    if low is not None:
        low = _port(low, f"{where}.rtp_port_min")
        high = _port(high, f"{where}.rtp_port_max")
        if low % 2:
            raise SipConfigError(f"{where}.rtp_port_min: an even port (RTP's; RTCP takes +1)")
        if high - low + 1 < _PORTS:
            raise SipConfigError(
                f"{where}.rtp_port_max: at least rtp_port_min + {_PORTS - 1} "
                "(a call takes RTP and RTCP ports for each of its two legs)"
            )
        values["rtp_port_min"], values["rtp_port_max"] = low, high
    rewrite = _flag(spec.get("contact_rewrite", False), f"{where}.contact_rewrite")
    if rewrite and mode != "register":
        raise SipConfigError(
            f"{where}.contact_rewrite: only a register line learns its public address "
            "(from the registrar); a listen line sets public_address"
        )
    if rewrite and public is not None:
        raise SipConfigError(
            f"{where}.contact_rewrite: not with public_address (the registrar's view "
            "would replace it): choose one"
        )
    values["contact_rewrite"] = rewrite
    keepalive = spec.get("keepalive_seconds", KEEPALIVE_BEHIND_NAT if rewrite else 0)
    if isinstance(keepalive, bool) or not isinstance(keepalive, int | str):
        raise SipConfigError(f"{where}.keepalive_seconds: a whole number of seconds")
    try:
        keepalive = int(keepalive)
    except ValueError:
        raise SipConfigError(f"{where}.keepalive_seconds: a whole number of seconds") from None
    if not 0 <= keepalive <= 3600:
        raise SipConfigError(f"{where}.keepalive_seconds: 0 (none) to 3600")
    if keepalive and mode != "register":
        raise SipConfigError(
            f"{where}.keepalive_seconds: only a register line sends keep-alives (to its registrar)"
        )
    values["keepalive_seconds"] = keepalive
    values["allow_from"] = _networks(spec.get("allow_from", []), f"{where}.allow_from")
    return values


def _public_address(value: Any, where: str) -> str:
    text = str(value).strip() if isinstance(value, str) else ""
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        if _HOST_NAME.match(text) and not text.replace(".", "").isdigit():
            return text
        raise SipConfigError(
            f"{where}: an IPv4 address or a host name (no scheme, no port), not {value!r}"
        ) from None
    if ip.version != 4 or ip.is_unspecified:
        raise SipConfigError(f"{where}: an IPv4 address the peers can reach, not {value!r}")
    return text


def _port(value: Any, where: str) -> int:
    if isinstance(value, bool):
        raise SipConfigError(f"{where}: a port number, not {value!r}")
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SipConfigError(f"{where}: a port number, not {value!r}") from None
    if not 1024 <= port <= 65535:
        raise SipConfigError(f"{where}: a port from 1024 to 65535, not {port}")
    return port


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise SipConfigError(f"{where}: true or false, not {value!r}")
    return value


def _networks(value: Any, where: str) -> tuple[Network, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise SipConfigError(f'{where}: a list of addresses or networks, e.g. ["10.0.0.0/8"]')
    networks = []
    for index, item in enumerate(value):
        try:
            if not isinstance(item, str):
                raise ValueError(item)
            networks.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise SipConfigError(
                f"{where}[{index}]: {item!r} is not an IP address or network (10.0.0.0/8)"
            ) from None
    return tuple(networks)
