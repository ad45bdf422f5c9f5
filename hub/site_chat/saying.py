"""A visitor's message: checked, then ingested like any channel's (once per client id).

What is refused gets an ``error`` frame naming the field, and nothing is written:
a required pre-chat field left empty, an email or phone that is no such thing, a file
that is not the visitor's upload, more messages a minute than the widget allows. A
message that ingest keeps failing on is parked (``hub/site_chat/poisoned.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from connectors.site_chat.config import WidgetConfig
from connectors.site_chat.protocol import Page as PageSeen
from connectors.site_chat.protocol import Say, attribution
from crm_core import site_visitors as visitors
from crm_core.contracts import (
    Attachment,
    Attribution,
    IdentityRef,
    InboundMessage,
    IngestResult,
)
from crm_core.enums import Channel, IdentityKind
from crm_core.identities import InvalidIdentityError, normalize_email, normalize_phone
from crm_core.inbound import InvalidInboundError
from crm_core.poisoned import PoisonedItems
from crm_core.site_visitors import Visitor
from crm_core.text import text_problem
from hub.keys import CLOCK, DATABASE, INGEST, SETTINGS
from hub.site_chat import SiteChat
from hub.site_chat.poisoned import PREFIX
from hub.site_chat.visits import team_hours

Answer = dict[str, Any]


class RefusedError(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Fields:
    name: str | None
    email: str | None
    phone: str | None


async def said(
    app: web.Application,
    chat: SiteChat,
    widget: WidgetConfig,
    visitor: Visitor,
    say: Say,
    page: PageSeen,
) -> tuple[Answer, Visitor | None]:
    """The answer frame (``ack`` or ``error``) and the visitor as stored after it (their
    conversation, what they typed into the form); None when nothing was stored."""
    try:
        if not await chat.messages_by_visitor.allow(
            str(visitor.id), widget.limits.messages_per_minute
        ):
            raise RefusedError("rate_limited", "too many messages a minute; wait a little")
        _check_text(widget, say)
        if visitor.conversation_id is None:  # another tab (another process) may have opened it
            visitor = await app[DATABASE].read(lambda s: visitors.reloaded(s, visitor.id))
        fields = _fields(app, widget, visitor, say)
        files = await _files(app, visitor, say)
        message = _inbound(app, widget, visitor, say, fields, files, page)
        poisoned = PoisonedItems(app[DATABASE], app[CLOCK], Channel.SITE_CHAT.value, PREFIX)
        try:
            result = await app[INGEST].ingest(message)
        except InvalidInboundError as exc:
            raise RefusedError("invalid", exc.problem, exc.field) from None
        except Exception as exc:  # a fault of ours: retried by the widget, parked if it stays
            if not await chat.failed.failed(poisoned, widget.key, visitor, say, exc):
                raise
            raise RefusedError(
                "parked", "this message could not be stored; it is kept for the team"
            ) from None
        await chat.failed.went_through(poisoned, widget.key, say)
    except RefusedError as refused:
        error: Answer = {"type": "error", "code": refused.code, "message": refused.message}
        if refused.field is not None:
            error["field"] = refused.field
        error["id"] = say.client_id
        return error, None
    typed_nothing = not (fields.name or fields.email or fields.phone)
    settled = visitor.conversation_id == result.conversation_id and not result.duplicate
    if settled and typed_nothing:
        # the common case, a visitor writing on in their chat: nothing more to store
        return {"type": "ack", "id": say.client_id, "message": _shown(message, result)}, visitor
    now = app[CLOCK].now()

    def after(session: Session) -> tuple[dict[str, Any] | None, Visitor]:
        typed = (fields.name, fields.email, fields.phone)
        visitors.remember_contact_fields(session, visitor.id, *typed)
        visitors.link_conversation(session, visitor.id, result.conversation_id)
        visitors.seen(session, visitor.id, now)
        linked = visitors.reloaded(session, visitor.id)
        return visitors.message_for(session, linked, result.message_id), linked

    shown, linked = await app[DATABASE].write(after)
    return {"type": "ack", "id": say.client_id, "message": shown}, linked


def _shown(message: InboundMessage, result: IngestResult) -> dict[str, Any]:
    """The message as the widget shows it (crm_core.site_visitors' view), without a read."""
    return {
        "id": result.message_id,
        "client_id": message.external_id.split(":", 1)[1],
        "from": "visitor",
        "author": None,
        "text": message.text,
        "files": [
            {"id": a.storage_key, "name": a.name, "size": a.size, "content_type": a.content_type}
            for a in message.attachments
        ],
        "at": message.occurred_at.isoformat(),
        "status": "received",
    }


def _check_text(widget: WidgetConfig, say: Say) -> None:
    if not say.text.strip() and not say.files:
        raise RefusedError("empty", "write something or attach a file", "text")
    if len(say.text) > widget.limits.max_message_chars:
        raise RefusedError(
            "too_long", f"at most {widget.limits.max_message_chars} characters", "text"
        )
    problem = text_problem(say.text)
    if problem is not None:
        raise RefusedError("invalid", problem, "text")


def _fields(app: web.Application, widget: WidgetConfig, visitor: Visitor, say: Say) -> Fields:
    """The pre-chat form's fields, normalized; required ones the visitor never gave are
    refused (out of hours, an email or a phone is needed to answer at all)."""
    given = say.contact
    region = app[SETTINGS].default_region
    email = phone = None
    try:
        email = normalize_email(given.email) if given.email else None
    except InvalidIdentityError:
        raise RefusedError("invalid", "this is not an email address", "contact.email") from None
    try:
        phone = normalize_phone(given.phone, region) if given.phone else None
    except InvalidIdentityError:
        raise RefusedError("invalid", "this is not a phone number", "contact.phone") from None
    have = {
        "name": given.name or visitor.name,
        "email": email or visitor.email,
        "phone": phone or visitor.phone,
    }
    if visitor.conversation_id is None:  # the form is asked for before the first message
        for name, mode in widget.prechat.items():
            if mode == "required" and not have[name]:
                raise RefusedError("required", f"{name} is required", f"contact.{name}")
    hours = team_hours(app, widget)
    closed = hours is not None and not hours.is_open(app[CLOCK].now())
    if closed and not have["email"] and not have["phone"]:
        raise RefusedError("required", "leave an email or a phone to be answered", "contact.email")
    return Fields(given.name, email, phone)


async def _files(app: web.Application, visitor: Visitor, say: Say) -> tuple[Attachment, ...]:
    if not say.files:
        return ()
    found = await app[DATABASE].read(lambda s: visitors.uploads_of(s, visitor.id, say.files))
    if found is None:
        raise RefusedError("file_not_found", "attach files uploaded in this chat", "files")
    return tuple(
        Attachment(
            name=f["name"],
            content_type=f["content_type"],
            size=f["size"],
            storage_key=f["storage_key"],
        )
        for f in found
    )


def _inbound(
    app: web.Application,
    widget: WidgetConfig,
    visitor: Visitor,
    say: Say,
    fields: Fields,
    files: tuple[Attachment, ...],
    page: PageSeen,
) -> InboundMessage:
    identities = [IdentityRef(IdentityKind.SITE_VISITOR, visitor.identity_value(widget.key))]
    email = fields.email or (visitor.email if visitor.verified else None)
    phone = fields.phone or (visitor.phone if visitor.verified else None)
    if email:
        identities.append(IdentityRef(IdentityKind.EMAIL, email))
    if phone:
        identities.append(IdentityRef(IdentityKind.PHONE, phone))
    first = visitor.first_visit
    came_from = attribution(page, PageSeen(url=first.get("url"), referrer=first.get("referrer")))
    return InboundMessage(
        channel=Channel.SITE_CHAT,
        channel_account=widget.key,
        external_id=f"{visitor.id}:{say.client_id}",
        identities=tuple(identities),
        occurred_at=app[CLOCK].now(),
        display_name=fields.name or visitor.name,
        text=say.text,
        attachments=files,
        # the first message opens the conversation, the touch and the deal: where from
        attribution=came_from if visitor.conversation_id is None else Attribution(),
        conversation_hint=visitor.conversation_id,
        own_conversation=True,
    )
