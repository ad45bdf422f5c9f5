"""What every inbound adapter shares: the request it sees, what it answers, body parsing,
field mapping (name, phone, email, comment; the rest kept as custom fields) and
attribution (UTM tags and click ids from fields, the page URL and the referrer).

Adapters are pure functions of a :class:`HookRequest`: they verify, parse and return
either an immediate :class:`Answer` (a handshake that writes nothing) or :class:`Leads`.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crm_core.contracts import Attachment, Attribution, IdentityRef, InboundMessage
from crm_core.enums import Channel, IdentityKind

MAX_FIELD = 4000
ATTRIBUTION_KEYS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "gclid",
    "yclid",
    "fbclid",
)
# Field names (lower case) recognised without configuration, per role.
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "fio", "full_name", "fullname", "your_name", "имя", "фио"),
    "first_name": ("first_name", "firstname"),
    "last_name": ("last_name", "lastname", "surname"),
    "phone": ("phone", "tel", "telephone", "phone_number", "mobile", "телефон"),
    "email": ("email", "e-mail", "mail", "your_email", "почта"),
    "comment": ("comment", "comments", "message", "text", "question", "комментарий"),
    "company": ("company", "company_name", "organization", "компания"),
    "page_url": ("page_url", "pageurl", "page", "url", "landing_page", "source_url"),
    "referrer": ("referrer", "referer"),
}


class HookError(Exception):
    """A request the hook refuses; ``status`` and ``error`` become the JSON answer."""

    status = 400
    error = "invalid_body"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedBodyError(HookError):
    status = 400
    error = "invalid_body"


class BadSignatureError(HookError):
    status = 401
    error = "bad_signature"


class UnsupportedMediaError(HookError):
    status = 415
    error = "unsupported_media_type"


@dataclass(frozen=True, slots=True)
class HookRequest:
    """The parts of an HTTP request an adapter may look at."""

    method: str
    body: bytes
    content_type: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    now: datetime
    content_type_header: str = ""


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer without writing anything (a handshake, a test ping, an ignored event)."""

    text: str = "ok"
    content_type: str = "text/plain"
    status: int = 200


@dataclass(frozen=True, slots=True)
class Leads:
    """Messages to ingest, then the answer the sender expects.

    ``body_hash`` is set when the sender gave no idempotency key: the hub then
    deduplicates by that hash within its time window.
    """

    messages: tuple[InboundMessage, ...]
    answer: Answer = field(default_factory=Answer)
    body_hash: str | None = None


@dataclass(frozen=True, slots=True)
class FormData:
    fields: dict[str, str]
    files: tuple[Attachment, ...] = ()


def body_hash(source_key: str, body: bytes) -> str:
    return hashlib.sha256(source_key.encode() + b"\0" + body).hexdigest()


def parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedBodyError(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise MalformedBodyError("the JSON body is nested too deeply") from None


def json_object(body: bytes) -> dict[str, Any]:
    document = parse_json(body)
    if not isinstance(document, dict):
        raise MalformedBodyError("the body must be a JSON object")
    return document


def is_json(content_type: str) -> bool:
    """``application/json`` or a ``+json`` type (aiohttp gives it lower case, no parameters)."""
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def json_body(request: HookRequest) -> dict[str, Any]:
    """The JSON object a JSON-only source takes; any other declared media type is a 415."""
    if not is_json(request.content_type):
        raise UnsupportedMediaError("send the body as application/json")
    return json_object(request.body)


def as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return ", ".join(str(v) for v in value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def parse_form(request: HookRequest) -> FormData:
    """JSON (a flat object), form-urlencoded or multipart into field name → text."""
    kind = request.content_type
    if is_json(kind):
        return FormData(
            {str(k): as_text(v)[:MAX_FIELD] for k, v in json_object(request.body).items()}
        )
    if kind == "application/x-www-form-urlencoded":
        try:
            text = request.body.decode()
        except UnicodeDecodeError:
            raise MalformedBodyError("the form body is not UTF-8") from None
        return FormData(_joined(parse_qsl(text, keep_blank_values=True)))
    if kind == "multipart/form-data":
        return _multipart(request)
    raise UnsupportedMediaError(
        "send JSON, application/x-www-form-urlencoded or multipart/form-data"
    )


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for key, value in pairs:
        value = value.strip()[:MAX_FIELD]
        fields[key] = (
            f"{fields[key]}, {value}" if fields.get(key) and value else value or fields.get(key, "")
        )
    return fields


def _multipart(request: HookRequest) -> FormData:
    header = request.content_type_header
    if "boundary=" not in header:
        raise MalformedBodyError("a multipart body needs a boundary")
    try:
        return _parts(header, request.body)
    except HookError:
        raise
    except Exception:  # the stdlib parser's many ways to fail on a broken body
        raise MalformedBodyError("the multipart body cannot be read") from None


def _parts(header: str, body: bytes) -> FormData:
    parser = email.parser.BytesParser(policy=email.policy.HTTP)
    message = parser.parsebytes(b"Content-Type: " + header.encode("latin-1") + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise MalformedBodyError("the multipart body cannot be read")
    pairs: list[tuple[str, str]] = []
    files: list[Attachment] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        filename = part.get_filename()
        if filename:
            files.append(Attachment(filename, part.get_content_type(), len(data)))
            continue
        try:
            pairs.append((name, data.decode(part.get_content_charset() or "utf-8")))
        except (UnicodeDecodeError, LookupError):
            raise MalformedBodyError(f"the field {name!r} is not text") from None
    return FormData(_joined(pairs), tuple(files))


def pick(fields: Mapping[str, str], role: str, mapping: Mapping[str, str]) -> str | None:
    """The value of a role: the configured field name first, then the known aliases."""
    configured = mapping.get(role)
    if configured is not None:
        return fields.get(configured) or None
    lowered = {k.lower(): v for k, v in fields.items()}
    for alias in ALIASES.get(role, ()):
        if lowered.get(alias):
            return lowered[alias]
    return None


def used_names(fields: Mapping[str, str], mapping: Mapping[str, str]) -> set[str]:
    """The field names the roles consumed (everything else is a custom field)."""
    used: set[str] = set()
    for role in ALIASES:
        configured = mapping.get(role)
        if configured is not None:
            used.add(configured)
            continue
        used.update(k for k in fields if k.lower() in ALIASES[role])
    used.update(k for k in fields if k.lower() in ATTRIBUTION_KEYS)
    return used


def attribution_from(
    fields: Mapping[str, str],
    page_url: str | None,
    referrer: str | None,
    defaults: Mapping[str, str] | None = None,
    utm_fallback: Mapping[str, str] | None = None,
) -> Attribution:
    """UTM tags and click ids from the fields, else from the page URL, else the referrer.

    ``utm_fallback`` (the UTM tags a page kept in a cookie) is taken as a whole, and only
    when neither the fields nor the URLs carry any UTM tag: one visit's tags, never a mix.
    """
    values: dict[str, str | None] = dict.fromkeys(ATTRIBUTION_KEYS)
    lowered = {k.lower(): v for k, v in fields.items()}
    for url in (referrer, page_url):  # the page URL wins over the referrer
        for key, value in _query_of(url).items():
            if key in values and value:
                values[key] = value[:200]
    for key in ATTRIBUTION_KEYS:
        if lowered.get(key):
            values[key] = lowered[key][:200]
    if utm_fallback and not any(values[k] for k in ATTRIBUTION_KEYS if k.startswith("utm_")):
        for key, value in utm_fallback.items():
            if key.startswith("utm_") and key in values and value:
                values[key] = value[:200]
    for key, value in (defaults or {}).items():
        if key in values and not values[key]:
            values[key] = value[:200]
    return Attribution(
        **values,
        referrer=referrer[:2000] if referrer else None,
        landing_page=page_url[:2000] if page_url else None,
    )


def _query_of(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        parts = urlsplit(url)
    except ValueError:
        return {}
    return {k.lower(): v for k, v in parse_qsl(parts.query)}


def custom_lines(fields: Mapping[str, str], skip: set[str]) -> list[str]:
    return [f"{k}: {v}" for k, v in fields.items() if k not in skip and v]


def identities(
    phone: str | None, email_: str | None, *more: IdentityRef
) -> tuple[IdentityRef, ...]:
    found = list(more)
    if phone:
        found.append(IdentityRef(IdentityKind.PHONE, phone))
    if email_:
        found.append(IdentityRef(IdentityKind.EMAIL, email_))
    if not found:
        raise MalformedBodyError("the lead has neither a phone nor an email")
    return tuple(found)


def form_lead(
    fields: Mapping[str, str],
    *,
    channel: Channel,
    source_key: str,
    external_id: str,
    now: datetime,
    mapping: Mapping[str, str],
    funnel: str | None,
    title: str,
    referrer: str | None = None,
    skip: Iterable[str] = (),
    files: tuple[Attachment, ...] = (),
    defaults: Mapping[str, str] | None = None,
    utm_fallback: Mapping[str, str] | None = None,
) -> InboundMessage:
    """A landing-page style lead: known roles, custom fields kept in the text."""
    name = pick(fields, "name", mapping)
    if name is None:
        parts = [pick(fields, "first_name", mapping), pick(fields, "last_name", mapping)]
        name = " ".join(p for p in parts if p) or None
    page_url = pick(fields, "page_url", mapping)
    referrer = pick(fields, "referrer", mapping) or referrer
    comment = pick(fields, "comment", mapping)
    lines = custom_lines(fields, used_names(fields, mapping) | set(skip))
    text = "\n".join([comment or "", "", title, *lines]).strip()
    return InboundMessage(
        channel=channel,
        channel_account=source_key,
        external_id=external_id,
        identities=identities(pick(fields, "phone", mapping), pick(fields, "email", mapping)),
        occurred_at=now,
        display_name=name[:200] if name else None,
        company=(pick(fields, "company", mapping) or "")[:200] or None,
        text=text,
        attachments=files,
        attribution=attribution_from(fields, page_url, referrer, defaults, utm_fallback),
        funnel=None if funnel is None else funnel,
    )


def presented_token(request: HookRequest) -> str | None:
    """A shared secret sent as ``X-Hook-Token``, ``Authorization: Bearer`` or ``?token=``."""
    token = request.headers.get("X-Hook-Token")
    if token:
        return token.strip()
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query.get("token")


def idempotency_key(request: HookRequest) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > 150 or not key.isprintable():  # bytes that are not UTF-8 too
        raise MalformedBodyError("Idempotency-Key: 1-150 printable characters of UTF-8")
    return key
