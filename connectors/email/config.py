"""Mailboxes as channel accounts: where to read, where to send, as whom.

Passwords never appear in ``repr`` (and so in logs) or in anything the API shows.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Security = Literal["tls", "starttls", "none"]
_SECURITY: tuple[Security, ...] = ("tls", "starttls", "none")


class MailboxConfigError(ValueError):
    """A mailbox setting that cannot be used; the message names the key."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str
    port: int
    security: Security
    user: str
    password: str = field(repr=False)
    # PEM certificates to trust besides the system's (a company's own CA).
    ca_file: str | None = None

    def public(self) -> dict[str, str | int | None]:
        """What may be shown: everything but the password."""
        return {
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "user": self.user,
            "ca_file": self.ca_file,
        }

    def tls_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context of ``tls`` and ``starttls``; None for ``none``."""
        if self.security == "none":
            return None
        return ssl.create_default_context(cafile=self.ca_file)


@dataclass(frozen=True, slots=True)
class MailboxConfig:
    """One mailbox: ``key`` is its channel account, ``address`` the From of our mail."""

    key: str
    address: str
    imap: ServerConfig
    smtp: ServerConfig
    folder: str = "INBOX"
    sent_folder: str | None = "Sent"
    display_name: str | None = None
    # Other addresses that are ours (aliases): mail from them is never a lead.
    aliases: tuple[str, ...] = ()
    poll_seconds: float = 60.0
    idle_seconds: float = 25 * 60.0  # re-issue IDLE well before the 29 minutes of RFC 2177
    batch_size: int = 200
    max_attachment_bytes: int = 25 * 1024 * 1024
    max_message_attachments_bytes: int = 50 * 1024 * 1024
    # a mail whose handling raised this often in a row is parked and the folder moves on
    poison_attempts: int = 5

    @property
    def own_addresses(self) -> frozenset[str]:
        return frozenset(a.lower() for a in (self.address, *self.aliases))


def parse_mailboxes(raw: object, where: str = "channels.email") -> tuple[MailboxConfig, ...]:
    """``[channels.email]`` with ``mailboxes = [...]``, or a bare list of mailbox tables."""
    if isinstance(raw, Mapping):
        raw = raw.get("mailboxes", [])
        where = f"{where}.mailboxes"
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes):
        raise MailboxConfigError(f"{where}: expected a list of mailbox tables")
    mailboxes = tuple(_mailbox(item, f"{where}[{i}]") for i, item in enumerate(raw))
    keys = [m.key for m in mailboxes]
    for key in keys:
        if keys.count(key) > 1:
            raise MailboxConfigError(f"{where}: the key {key!r} is used twice")
    return mailboxes


def _mailbox(raw: object, where: str) -> MailboxConfig:
    if not isinstance(raw, Mapping):
        raise MailboxConfigError(f"{where}: expected a table")
    address = _str(raw, "address", where)
    if "@" not in address:
        raise MailboxConfigError(f"{where}.address: not an email address: {address!r}")
    aliases = raw.get("aliases", [])
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise MailboxConfigError(f"{where}.aliases: expected a list of addresses")
    sent = raw.get("sent_folder", "Sent")
    if sent is not None and not isinstance(sent, str):
        raise MailboxConfigError(f"{where}.sent_folder: expected a folder name or null")
    return MailboxConfig(
        key=_str(raw, "key", where),
        address=address.lower(),
        imap=_server(raw.get("imap"), f"{where}.imap", default_port={"tls": 993}, plain=143),
        smtp=_server(raw.get("smtp"), f"{where}.smtp", default_port={"tls": 465}, plain=587),
        folder=str(raw.get("folder", "INBOX")),
        sent_folder=sent or None,
        display_name=_optional_str(raw, "display_name", where),
        aliases=tuple(a.lower() for a in aliases),
        poll_seconds=_number(raw, "poll_seconds", where, 60.0),
        idle_seconds=min(_number(raw, "idle_seconds", where, 25 * 60.0), 29 * 60.0),
        batch_size=int(_number(raw, "batch_size", where, 200)),
        max_attachment_bytes=int(_number(raw, "max_attachment_bytes", where, 25 * 1024 * 1024)),
        max_message_attachments_bytes=int(
            _number(raw, "max_message_attachments_bytes", where, 50 * 1024 * 1024)
        ),
        poison_attempts=int(_number(raw, "poison_attempts", where, 5)),
    )


def _server(raw: object, where: str, default_port: Mapping[str, int], plain: int) -> ServerConfig:
    if not isinstance(raw, Mapping):
        raise MailboxConfigError(f"{where}: expected a table with host, port, security, user")
    security = raw.get("security", "tls")
    if security not in _SECURITY:
        raise MailboxConfigError(f"{where}.security: expected one of {', '.join(_SECURITY)}")
    port = raw.get("port", default_port.get(str(security), plain))
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise MailboxConfigError(f"{where}.port: expected a port number")
    password = raw.get("password", "")
    if not isinstance(password, str):
        raise MailboxConfigError(f"{where}.password: expected a string")
    ca_file = _optional_str(raw, "ca_file", where)
    if ca_file is not None and not Path(ca_file).is_file():
        raise MailboxConfigError(f"{where}.ca_file: no such file: {ca_file!r}")
    return ServerConfig(
        host=_str(raw, "host", where),
        port=port,
        security=security,
        user=_str(raw, "user", where),
        password=password,
        ca_file=ca_file,
    )


def _str(raw: Mapping[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MailboxConfigError(f"{where}.{key}: expected a non-empty string")
    return value.strip()


def _optional_str(raw: Mapping[str, Any], key: str, where: str) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        raise MailboxConfigError(f"{where}.{key}: expected a string")
    return value


def _number(raw: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = raw.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
        raise MailboxConfigError(f"{where}.{key}: expected a positive number")
    return float(value)
