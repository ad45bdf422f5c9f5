"""Real mail into what the hub keeps: the ``email`` package with ``policy.default``.

Never raises: a message the package cannot make sense of comes back ``malformed``
with what could be salvaged, and its raw bytes are kept by the caller.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime

from connectors.email import guards
from connectors.email.charsets import decode_text, fix_header
from connectors.email.text import html_to_text, sanitize_html, split_reply
from connectors.email.threads import normalize_message_id, thread_refs

log = logging.getLogger(__name__)

_HEADER_ID = re.compile(rb"^message-id:\s*<?([^\s<>]+)>?", re.I | re.M)
_HEADER_FROM = re.compile(rb"^from:.*?([\w.+-]+@[\w-]+(?:\.[\w-]+)+)", re.I | re.M)


@dataclass(frozen=True, slots=True)
class Part:
    """A file in the mail: an attachment or an inline image."""

    name: str
    content_type: str
    data: bytes
    inline: bool = False
    content_id: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedMail:
    message_id: str
    sender: str | None
    display_name: str | None
    subject: str
    occurred_at: datetime | None
    text: str
    quoted: str = ""
    signature: str = ""
    html: str | None = None  # sanitized, for display
    parts: tuple[Part, ...] = ()
    thread_refs: tuple[str, ...] = ()
    auto_reply: bool = False
    bounce: bool = False
    failed_recipients: tuple[str, ...] = ()
    malformed: bool = False
    problems: tuple[str, ...] = field(default=())


class _RememberedHeaders(HeaderRegistry):
    """``policy.default``'s header registry, remembering what it parsed.

    The ``email`` package parses a header again on every read (a part's Content-Type
    some ten times per message); parsed headers are immutable, so one parse is enough.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            if len(self._parsed) >= 4096:
                self._parsed.clear()
            header = self._parsed[key] = super().__call__(name, value)
        return header


POLICY = policy.default.clone(header_factory=_RememberedHeaders())


def raw_id(raw: bytes) -> str:
    """The id of a message without a Message-ID: the hash of its bytes."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def parse(raw: bytes) -> ParsedMail:
    try:
        message = BytesParser(policy=POLICY).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        return _parse(message, raw)
    except Exception as exc:
        log.warning("unparsable mail (%d bytes): %s", len(raw), type(exc).__name__)
        return _salvage(raw, f"{type(exc).__name__}: {exc}")


def _salvage(raw: bytes, problem: str) -> ParsedMail:
    found = _HEADER_ID.search(raw[:65536])
    sender = _HEADER_FROM.search(raw[:65536])
    return ParsedMail(
        message_id=found.group(1).decode("ascii", "replace") if found else raw_id(raw),
        sender=sender.group(1).decode("ascii", "replace").lower() if sender else None,
        display_name=None,
        subject="",
        occurred_at=None,
        text="",
        malformed=True,
        problems=(problem,),
    )


def _header(message: EmailMessage, name: str) -> str:
    raw = _raw_header(message, name)
    if _has_raw_8bit(raw):  # unencoded 8-bit header: the policy would show U+FFFD
        return fix_header(" ".join(raw.split()))
    try:
        value = message.get(name)
    except Exception:  # a header the policy cannot parse: read it raw
        value = raw
    return str(value or "").strip()


def _has_raw_8bit(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _raw_header(message: EmailMessage, name: str) -> str:
    """A header's text as sent (ids, dates): no structured parsing that could raise."""
    for key, value in message.raw_items():
        if key.lower() == name.lower():
            return str(value).strip()
    return ""


def _sender(message: EmailMessage) -> tuple[str | None, str | None]:
    problems: str | None = None
    raw = _raw_header(message, "From")
    if _has_raw_8bit(raw):
        raw = fix_header(raw)
        for name, addr in getaddresses([raw]):
            if "@" in addr:
                return addr.lower(), name or None
    try:
        header = message["From"]
        addresses: tuple[Address, ...] = getattr(header, "addresses", ())
        for address in addresses:
            if address.addr_spec and "@" in address.addr_spec:
                return address.addr_spec.lower(), fix_header(address.display_name) or None
    except Exception as exc:
        problems = str(exc)
    for name, addr in getaddresses([raw]):
        if "@" in addr:
            return addr.lower(), fix_header(name) or None
    if problems:
        log.debug("no usable From: %s", problems)
    return None, None


def _date(message: EmailMessage) -> datetime | None:
    value = _raw_header(message, "Date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _decoded(part: EmailMessage) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        return ""
    return decode_text(data, part.get_param("charset") and str(part.get_param("charset")))


def _parse(message: EmailMessage, raw: bytes) -> ParsedMail:
    problems = [type(d).__name__ for d in message.defects]
    sender, display_name = _sender(message)
    subject = _header(message, "Subject")
    plain: str | None = None
    html: str | None = None
    parts: list[Part] = []
    report = message.get_content_type() == "multipart/report"
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = part.get_filename()
        if ctype in {"text/plain", "text/html"} and disposition != "attachment" and not filename:
            if ctype == "text/plain" and plain is None:
                plain = _decoded(part)
            elif ctype == "text/html" and html is None:
                html = _decoded(part)
            continue
        if report and ctype in {"message/delivery-status", "text/rfc822-headers"}:
            continue
        if ctype == "message/rfc822" or part.get_content_maintype() == "multipart":
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        cid = part.get("Content-ID")
        parts.append(
            Part(
                name=fix_header(filename or "") or f"part-{len(parts) + 1}",
                content_type=ctype,
                data=data,
                inline=disposition == "inline" or (disposition is None and cid is not None),
                content_id=normalize_message_id(str(cid)) if cid else None,
            )
        )
    text = plain if plain is not None and plain.strip() else html_to_text(html or "")
    split = split_reply(text)
    message_id = normalize_message_id(_raw_header(message, "Message-ID")) or raw_id(raw)
    bounce = guards.is_bounce(message, sender)
    return ParsedMail(
        message_id=message_id,
        sender=sender,
        display_name=display_name,
        subject=subject,
        occurred_at=_date(message),
        text=split.new,
        quoted=split.quoted,
        signature=split.signature,
        html=sanitize_html(html) if html else None,
        parts=tuple(parts),
        thread_refs=thread_refs(
            _raw_header(message, "In-Reply-To"), _raw_header(message, "References")
        ),
        auto_reply=guards.is_auto_reply(message),
        bounce=bounce,
        failed_recipients=guards.failed_recipients(message) if bounce else (),
        malformed=sender is None,
        problems=tuple(problems) + (() if sender else ("no usable From address",)),
    )
