"""Site chat visitors in the store: sessions by token digest, the widget's view of a
conversation, read marks, and the replies to mail to visitors who did not come back.

The widget's view is narrow on purpose: a visitor sees the messages of their own
conversation that went through their widget (in and out, never notes nor other
channels), whoever the contact has been merged with.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from crm_core import tables as t
from crm_core.contracts import IdentityRef
from crm_core.enums import Channel, DeliveryStatus, Direction, IdentityKind
from crm_core.journal import Journal
from crm_core.models import (
    ChannelAccount,
    ContactIdentity,
    Conversation,
    ConversationRead,
    Manager,
    Message,
    SiteSession,
    SiteUpload,
    SiteVisitor,
)
from crm_core.replies import queue_reply, record_delivery
from crm_core.tables import insert_new

HISTORY_LIMIT = 200
_READABLE = (DeliveryStatus.SENT.value, DeliveryStatus.DELIVERED.value)
_SAFE_USER_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Visitor:
    id: int
    account_id: int
    visitor_key: str
    verified: bool
    name: str | None
    email: str | None
    phone: str | None
    conversation_id: int | None
    first_visit: dict[str, Any]
    read_up_to: int

    def identity_value(self, widget_key: str) -> str:
        """The contact's ``site_visitor`` identity: ``<widget>:<visitor key>``."""
        return f"{widget_key}:{self.visitor_key}"[:200]

    def as_shown(self) -> dict[str, Any]:
        """What the visitor may see of themselves: what they typed, no more."""
        return {
            "name": self.name,
            "email": self.email,
            "phone": self.phone,
            "verified": self.verified,
        }


def visitor_key_of(user_id: str | None) -> str:
    """A verified user's key (their id, or its digest when it holds other characters),
    or a new anonymous visitor's random key."""
    if user_id is None:
        return "v:" + secrets.token_hex(12)
    if _SAFE_USER_ID.match(user_id):
        return "user:" + user_id
    return "user-sha256:" + hashlib.sha256(user_id.encode()).hexdigest()


def widget_account(session: Session, key: str, now: datetime) -> int:
    """The widget's channel account (created on first use, as ingest does)."""
    return account_of(session, Channel.SITE_CHAT, key, now)


def account_of(session: Session, channel: Channel, key: str, now: datetime) -> int:
    values = {"channel": channel.value, "key": key, "title": key, "created_at": now}
    session.execute(insert_new(session, t.channel_accounts, ("channel", "key")).values(values))
    found = session.scalar(
        select(ChannelAccount.id).where(
            ChannelAccount.channel == channel.value, ChannelAccount.key == key
        )
    )
    assert found is not None
    return int(found)


def _visitor(row: SiteVisitor) -> Visitor:
    return Visitor(
        id=row.id,
        account_id=row.channel_account_id,
        visitor_key=row.visitor_key,
        verified=row.verified,
        name=row.name,
        email=row.email,
        phone=row.phone,
        conversation_id=row.conversation_id,
        first_visit=dict(row.first_visit or {}),
        read_up_to=row.read_up_to,
    )


def by_token(session: Session, account_id: int, token: str, now: datetime) -> Visitor | None:
    """The visitor whose browser holds ``token`` (and is seen now), or None."""
    found = session.execute(
        select(SiteVisitor, SiteSession)
        .join(SiteSession, SiteSession.visitor_id == SiteVisitor.id)
        .where(SiteSession.token_sha256 == digest(token))
    ).first()
    if found is None or found[0].channel_account_id != account_id:
        return None
    found[0].last_seen_at = now
    found[1].last_seen_at = now
    return _visitor(found[0])


def open_visitor(
    session: Session,
    account_id: int,
    visitor_key: str,
    *,
    verified: bool,
    first_visit: dict[str, Any],
    token: str,
    now: datetime,
) -> Visitor:
    """The visitor under ``visitor_key`` (a verified user seen before is found again),
    with ``token`` as one more of their browser sessions."""
    new = insert_new(session, t.site_visitors, ("channel_account_id", "visitor_key"))
    session.execute(
        new.values(
            {
                "channel_account_id": account_id,
                "visitor_key": visitor_key,
                "verified": verified,
                "first_visit": first_visit,
                "read_up_to": 0,
                "emailed_up_to": 0,
                "created_at": now,
                "last_seen_at": now,
            }
        )
    )
    row = session.scalars(
        select(SiteVisitor).where(
            SiteVisitor.channel_account_id == account_id, SiteVisitor.visitor_key == visitor_key
        )
    ).one()
    row.last_seen_at = now
    session.add(
        SiteSession(token_sha256=digest(token), visitor_id=row.id, created_at=now, last_seen_at=now)
    )
    session.flush()
    return _visitor(row)


def remember_contact_fields(
    session: Session, visitor_id: int, name: str | None, email: str | None, phone: str | None
) -> None:
    """What the visitor typed into the form (shown back to them on their next visit)."""
    values = {k: v for k, v in (("name", name), ("email", email), ("phone", phone)) if v}
    if values:
        session.execute(update(SiteVisitor).where(SiteVisitor.id == visitor_id).values(**values))


def remember_language(session: Session, visitor_id: int, language: str | None) -> None:
    if language:
        visitor = update(SiteVisitor).where(SiteVisitor.id == visitor_id)
        session.execute(visitor.values(language=language))


def link_conversation(session: Session, visitor_id: int, conversation_id: int) -> None:
    session.execute(
        update(SiteVisitor)
        .where(SiteVisitor.id == visitor_id, SiteVisitor.conversation_id.is_(None))
        .values(conversation_id=conversation_id)
    )


def seen(session: Session, visitor_id: int, now: datetime) -> None:
    visitor = update(SiteVisitor).where(SiteVisitor.id == visitor_id)
    session.execute(visitor.values(last_seen_at=now))


def history(session: Session, visitor: Visitor) -> list[dict[str, Any]]:
    """The widget's messages of the visitor's conversation, oldest first."""
    if visitor.conversation_id is None:
        return []
    rows = session.execute(
        _shown()
        .where(
            Message.conversation_id == visitor.conversation_id,
            Message.channel_account_id == visitor.account_id,
        )
        .order_by(Message.id.desc())
        .limit(HISTORY_LIMIT)
    ).all()
    return [_view(row) for row in reversed(rows)]


def message_for(session: Session, visitor: Visitor, message_id: int) -> dict[str, Any] | None:
    """One message as the widget shows it, if it is the visitor's to see."""
    if visitor.conversation_id is None:
        return None
    row = session.execute(
        _shown().where(
            Message.id == message_id,
            Message.conversation_id == visitor.conversation_id,
            Message.channel_account_id == visitor.account_id,
        )
    ).first()
    return None if row is None else _view(row)


def _shown() -> Any:
    return (
        select(
            Message.id,
            Message.direction,
            Message.author_kind,
            Manager.name,
            Message.text,
            Message.attachments,
            Message.external_id,
            Message.occurred_at,
            Message.delivery_status,
        )
        .outerjoin(Manager, Manager.id == Message.author_manager_id)
        .where(Message.direction.in_((Direction.INBOUND.value, Direction.OUTBOUND.value)))
    )


def _view(row: Any) -> dict[str, Any]:
    inbound = row.direction == Direction.INBOUND.value
    client_id = None
    if inbound and row.external_id and ":" in row.external_id:
        client_id = row.external_id.split(":", 1)[1]
    return {
        "id": row.id,
        "client_id": client_id,
        "from": "visitor" if inbound else ("manager" if row.author_kind == "manager" else "system"),
        "author": None if inbound else _first_name(row.name),
        "text": row.text,
        "files": [
            {
                "id": a.get("storage_key"),
                "name": a.get("name"),
                "size": a.get("size"),
                "content_type": a.get("content_type"),
            }
            for a in row.attachments or ()
            if a.get("storage_key")
        ],
        "at": row.occurred_at.isoformat(),
        "status": row.delivery_status,
    }


def _first_name(name: str | None) -> str | None:
    """A manager as the client sees them: the first word of their name."""
    return name.split()[0][:60] if name and name.split() else None


def manager_read_up_to(session: Session, conversation_id: int | None) -> int:
    """The last message of the conversation any manager has read (0: none)."""
    if conversation_id is None:
        return 0
    found = session.scalar(
        select(func.max(ConversationRead.last_read_message_id)).where(
            ConversationRead.conversation_id == conversation_id
        )
    )
    return int(found or 0)


def mark_read(session: Session, journal: Journal, visitor: Visitor, up_to: int) -> int:
    """The visitor has seen the replies up to ``up_to``: they are marked read."""
    if visitor.conversation_id is None or up_to <= visitor.read_up_to:
        return visitor.read_up_to
    unread = session.scalars(
        select(Message.id).where(
            Message.conversation_id == visitor.conversation_id,
            Message.channel_account_id == visitor.account_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.id > visitor.read_up_to,
            Message.id <= up_to,
            Message.delivery_status.in_(_READABLE),
        )
    ).all()
    for message_id in unread:
        record_delivery(session, journal, message_id, DeliveryStatus.READ)
    session.execute(
        update(SiteVisitor)
        .where(SiteVisitor.id == visitor.id, SiteVisitor.read_up_to < up_to)
        .values(read_up_to=up_to)
    )
    return up_to


def add_upload(
    session: Session,
    visitor_id: int,
    storage_key: str,
    name: str,
    content_type: str,
    size: int,
    now: datetime,
) -> None:
    values = {
        "storage_key": storage_key,
        "visitor_id": visitor_id,
        "name": name,
        "content_type": content_type,
        "size": size,
        "created_at": now,
    }
    session.execute(
        insert_new(session, t.site_uploads, ("visitor_id", "storage_key")).values(values)
    )


def uploads_of(
    session: Session, visitor_id: int, keys: Sequence[str]
) -> list[dict[str, Any]] | None:
    """The visitor's uploads under ``keys``, in that order; None if any is not theirs."""
    if not keys:
        return []
    rows = {
        row.storage_key: row
        for row in session.scalars(
            select(SiteUpload).where(
                SiteUpload.visitor_id == visitor_id, SiteUpload.storage_key.in_(keys)
            )
        )
    }
    if any(key not in rows for key in keys):
        return None
    return [
        {
            "storage_key": key,
            "name": rows[key].name,
            "content_type": rows[key].content_type,
            "size": rows[key].size,
        }
        for key in keys
    ]


def file_of(session: Session, visitor: Visitor, storage_key: str) -> dict[str, Any] | None:
    """A file of the visitor's conversation on their widget (theirs or a manager's)."""
    for message in history(session, visitor):
        for shown in message["files"]:
            if shown["id"] == storage_key:
                return dict(shown)
    found = session.scalar(
        select(SiteUpload).where(
            SiteUpload.visitor_id == visitor.id, SiteUpload.storage_key == storage_key
        )
    )
    if found is None:
        return None
    return {"id": found.storage_key, "name": found.name, "content_type": found.content_type}


@dataclass(frozen=True, slots=True)
class FollowUp:
    """Replies a visitor has not seen, to go out by mail."""

    visitor_id: int
    conversation_id: int
    email: str
    language: str | None
    texts: tuple[str, ...]
    last_message_id: int


def due_follow_ups(
    session: Session, account_id: int, after: timedelta, now: datetime, limit: int = 50
) -> list[FollowUp]:
    """Visitors with manager replies older than ``after`` that they have neither read nor
    come back for since, and that were not mailed yet; only visitors who left an email."""
    cutoff = now - after
    rows = session.execute(
        select(
            SiteVisitor.id,
            SiteVisitor.conversation_id,
            SiteVisitor.email,
            SiteVisitor.language,
            Message.id,
            Message.text,
        )
        .join(Message, Message.conversation_id == SiteVisitor.conversation_id)
        .where(
            SiteVisitor.channel_account_id == account_id,
            SiteVisitor.email.is_not(None),
            Message.channel_account_id == account_id,
            Message.direction == Direction.OUTBOUND.value,
            Message.id > SiteVisitor.read_up_to,
            Message.id > SiteVisitor.emailed_up_to,
            Message.created_at <= cutoff,
            SiteVisitor.last_seen_at < Message.created_at,
        )
        .order_by(SiteVisitor.id, Message.id)
        .limit(limit * 20)
    ).all()
    found: dict[int, FollowUp] = {}
    for visitor_id, conversation_id, email, language, message_id, text in rows:
        if conversation_id is None or email is None:
            continue
        earlier = found.get(visitor_id)
        if earlier is None and len(found) >= limit:
            break
        texts = (*earlier.texts, text) if earlier else (text,)
        found[visitor_id] = FollowUp(
            visitor_id, conversation_id, email, language, texts, message_id
        )
    return list(found.values())


def mail_follow_up(
    session: Session,
    journal: Journal,
    follow_up: FollowUp,
    mailbox_account: int,
    text: str,
    subject: str | None = None,
) -> bool:
    """Queue ``text`` by mail from the mailbox, in the visitor's conversation, and note the
    replies as mailed; False when they were mailed meanwhile or there is no address."""
    claimed = session.execute(
        update(SiteVisitor)
        .where(
            SiteVisitor.id == follow_up.visitor_id,
            SiteVisitor.emailed_up_to < follow_up.last_message_id,
        )
        .values(emailed_up_to=follow_up.last_message_id)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return False
    contact_id = session.scalar(
        select(Conversation.contact_id).where(Conversation.id == follow_up.conversation_id)
    )
    reachable = session.scalar(
        select(func.count()).where(
            and_(
                ContactIdentity.contact_id == contact_id,
                ContactIdentity.kind == IdentityKind.EMAIL.value,
                ContactIdentity.value == follow_up.email,
                ContactIdentity.unreachable_at.is_(None),
            )
        )
    )
    if not reachable:  # the address the visitor typed only, and only while it works
        return False
    to = IdentityRef(IdentityKind.EMAIL, follow_up.email)
    queue_reply(
        session,
        journal,
        follow_up.conversation_id,
        text,
        via_account_id=mailbox_account,
        to=to,
        subject=subject,
    )
    return True


def reloaded(session: Session, visitor_id: int) -> Visitor:
    """The visitor as stored now."""
    row = session.execute(
        select(SiteVisitor)
        .where(SiteVisitor.id == visitor_id)
        .execution_options(populate_existing=True)
    ).scalar_one()
    return _visitor(row)
