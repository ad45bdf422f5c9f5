"""The widget socket's frames (docs/site-chat.md), read into value objects (pure).

A frame that is not what the protocol says (not JSON, not an object, an unknown type, a
field of the wrong type) raises :class:`MalformedFrameError`: the socket is closed with 4400
and nothing of it is written. What is well formed but refused (a required field left
empty) is the caller's business and gets an ``error`` frame.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crm_core.contracts import Attribution

MAX_FRAME_BYTES = 64 * 1024
_CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UTM = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_CLICK_IDS = ("gclid", "yclid", "fbclid")


class MalformedFrameError(ValueError):
    """A frame the protocol does not allow; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Page:
    url: str | None = None
    referrer: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class User:
    """A site's logged-in user as the page says; trusted only with a matching hash."""

    id: str
    hash: str
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    key: str
    token: str | None
    page: Page
    first_visit: Page | None = None
    user: User | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ContactFields:
    name: str | None = None
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class Say:
    """A visitor's message (the frame type ``message``)."""

    client_id: str
    text: str
    files: tuple[str, ...] = ()
    contact: ContactFields = field(default_factory=ContactFields)


@dataclass(frozen=True, slots=True)
class Typing:
    on: bool


@dataclass(frozen=True, slots=True)
class Read:
    up_to: int


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Frame = Hello | Say | Typing | Read | Ping


def read_frame(data: str) -> Frame:
    """The frame in ``data`` (a text frame's payload)."""
    if len(data) > MAX_FRAME_BYTES:
        raise MalformedFrameError("the frame is over 64 KiB")
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedFrameError("the frame is not JSON") from exc
    if not isinstance(raw, dict):
        raise MalformedFrameError("a frame is a JSON object with a type")
    kind = raw.get("type")
    if kind == "hello":
        return _hello(raw)
    if kind == "message":
        return _say(raw)
    if kind == "typing":
        on = raw.get("on")
        if not isinstance(on, bool):
            raise MalformedFrameError("typing.on: expected true or false")
        return Typing(on)
    if kind == "read":
        up_to = raw.get("up_to")
        if not isinstance(up_to, int) or isinstance(up_to, bool) or not 0 <= up_to < 2**63:
            raise MalformedFrameError("read.up_to: expected a message id")
        return Read(up_to)
    if kind == "ping":
        return Ping()
    raise MalformedFrameError("type: expected hello, message, typing, read or ping")


def _hello(raw: dict[str, Any]) -> Hello:
    key = raw.get("key")
    if not isinstance(key, str) or not key:
        raise MalformedFrameError("hello.key: expected the widget's key")
    token = _optional(raw, "token", "hello", 200)
    page = _page(raw.get("page"), "hello.page")
    if page is None:
        raise MalformedFrameError("hello.page: expected {url, referrer, origin}")
    language = _optional(raw, "language", "hello", 8)
    return Hello(
        key=key[:64],
        token=token,
        page=page,
        first_visit=_page(raw.get("first_visit"), "hello.first_visit"),
        user=_user(raw.get("user")),
        language=language if language in ("ru", "en") else None,
    )


def _page(raw: object, where: str) -> Page | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedFrameError(f"{where}: expected an object")
    return Page(
        url=_optional(raw, "url", where, 2000),
        referrer=_optional(raw, "referrer", where, 2000),
        origin=_optional(raw, "origin", where, 300),
    )


def _user(raw: object) -> User | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise MalformedFrameError("hello.user: expected an object with id and hash")
    user_id, digest = raw.get("id"), raw.get("hash")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not 0 < len(user_id) <= 128:
        raise MalformedFrameError("hello.user.id: expected the site's user id (1-128 characters)")
    if not isinstance(digest, str) or len(digest) > 256:
        raise MalformedFrameError("hello.user.hash: expected HMAC-SHA256(secret, id) in hex")
    return User(
        id=user_id,
        hash=digest,
        name=_optional(raw, "name", "hello.user", 200),
        email=_optional(raw, "email", "hello.user", 320),
        phone=_optional(raw, "phone", "hello.user", 40),
    )


def _say(raw: dict[str, Any]) -> Say:
    client_id = raw.get("id")
    if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
        raise MalformedFrameError("message.id: expected 1-64 of A-Z a-z 0-9 _ -")
    text = raw.get("text", "")
    if not isinstance(text, str):
        raise MalformedFrameError("message.text: expected a string")
    files = raw.get("files", [])
    if (
        not isinstance(files, list)
        or len(files) > 10
        or not all(isinstance(f, str) and 0 < len(f) <= 300 for f in files)
    ):
        raise MalformedFrameError("message.files: expected up to 10 upload ids")
    contact = raw.get("contact")
    fields = ContactFields()
    if contact is not None:
        if not isinstance(contact, dict):
            raise MalformedFrameError("message.contact: expected {name, email, phone}")
        fields = ContactFields(
            name=_optional(contact, "name", "message.contact", 200),
            email=_optional(contact, "email", "message.contact", 320),
            phone=_optional(contact, "phone", "message.contact", 40),
        )
    return Say(client_id, text, tuple(files), fields)


def _optional(raw: dict[str, Any], key: str, where: str, limit: int) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MalformedFrameError(f"{where}.{key}: expected a string or null")
    value = value.strip()
    if len(value) > limit:
        raise MalformedFrameError(f"{where}.{key}: longer than {limit} characters")
    return value or None


def attribution(page: Page, first_visit: Page | None) -> Attribution:
    """Where the visitor came from: this visit's UTM tags and click ids, else the first
    visit's (the last non-direct touch); the landing page and referrer go with them."""
    for visit in (page, first_visit):
        if visit is None:
            continue
        tags = _tags(visit.url)
        if tags:
            return Attribution(
                **tags, referrer=_external(visit.referrer), landing_page=_landing(visit.url)
            )
    return Attribution(referrer=_external(page.referrer), landing_page=_landing(page.url))


def _tags(url: str | None) -> dict[str, str]:
    if not url:
        return {}
    try:
        query = urlsplit(url).query
    except ValueError:
        return {}
    found: dict[str, str] = {}
    for name, value in parse_qsl(query):
        if name in _UTM + _CLICK_IDS and value and name not in found:
            found[name] = value[:300]
    return found


def _landing(url: str | None) -> str | None:
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https"):
        return None
    return parts._replace(fragment="").geturl()[:2000]


def _external(referrer: str | None) -> str | None:
    return _landing(referrer)
