"""The calls list: every call the viewer may see, newest first, filtered.

A manager sees the calls of the conversations they may see (:func:`conversation_scope`)
and the calls they took themselves (``Call.manager_id``); a head of sales, an admin and
an integration see every call. Asked for one contact's calls, a viewer who may see the
contact sees all of them (the contact card's history), as before there was a list.

A call *belongs* to the manager who took it or, when nobody did (a missed call), to the
manager of its conversation: the one whose call back it is. The ``manager_id`` filter and
the per-manager call statistics (:mod:`crm_core.reports.calls`) both count it that way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.orm import Session, aliased

from crm_core import queries
from crm_core.access import Viewer, conversation_scope, sees_contact
from crm_core.enums import CallDisposition, Direction
from crm_core.models import Call, ChannelAccount, Contact, Conversation, Manager, Message

MISSED = "missed"
"""As a filter, "missed" is every inbound call nobody answered (busy, voicemail, ...)."""
DISPOSITIONS = frozenset(d.value for d in CallDisposition)


def call_owner() -> ColumnElement[Any]:
    """The manager a call belongs to: who took it, else its conversation's manager."""
    owner: ColumnElement[Any] = func.coalesce(Call.manager_id, Conversation.assignee_id)
    return owner


def disposition_is(disposition: str) -> ColumnElement[bool]:
    """Calls with this outcome; ``missed`` is every unanswered inbound call."""
    if disposition == MISSED:
        return and_(
            Call.direction == Direction.INBOUND.value,
            Call.disposition != CallDisposition.ANSWERED.value,
        )
    return Call.disposition == disposition


def call_scope(viewer: Viewer) -> ColumnElement[bool]:
    """Calls of conversations the viewer may see, and calls the viewer took."""
    if viewer.sees_all:
        return true()
    return or_(conversation_scope(viewer), Call.manager_id == viewer.manager_id)


@dataclass(frozen=True, slots=True)
class CallFilter:
    """What the list is narrowed to; ``start``/``end`` bound ``started_at`` (UTC, end
    exclusive)."""

    contact_id: int | None = None
    direction: str | None = None
    disposition: str | None = None
    manager_id: int | None = None
    line: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    after: int = 0
    limit: int = 50


def calls_page(session: Session, viewer: Viewer, wanted: CallFilter) -> dict[str, Any] | None:
    """A page of calls with the contact's and the manager's names; None when the contact
    asked for is not one the viewer may see."""
    owner_row = aliased(Manager)
    owner = call_owner()
    query = (
        select(Call, Contact.name, owner, owner_row.name, ChannelAccount.key)
        .join(Conversation, Conversation.id == Call.conversation_id)
        .join(Contact, Contact.id == Call.contact_id)
        .join(ChannelAccount, ChannelAccount.id == Call.channel_account_id)
        .outerjoin(owner_row, owner_row.id == owner)
    )
    if wanted.contact_id is not None:
        if not sees_contact(session, viewer, wanted.contact_id):
            return None
        query = query.where(Call.contact_id == wanted.contact_id)
    else:
        query = query.where(call_scope(viewer))
    if wanted.direction is not None:
        query = query.where(Call.direction == wanted.direction)
    if wanted.disposition is not None:
        query = query.where(disposition_is(wanted.disposition))
    if wanted.manager_id is not None:
        query = query.where(owner == wanted.manager_id)
    if wanted.line is not None:
        query = query.where(ChannelAccount.key == wanted.line)
    if wanted.start is not None:
        query = query.where(Call.started_at >= wanted.start)
    if wanted.end is not None:
        query = query.where(Call.started_at < wanted.end)
    if wanted.after:
        query = query.where(Call.id < wanted.after)
    rows = session.execute(query.order_by(Call.id.desc()).limit(wanted.limit)).all()
    calls = [row[0] for row in rows]
    voicemails, recordings = (
        _places(session, calls, "voicemail"),
        _places(session, calls, "recording"),
    )
    items = []
    for call, contact_name, owner_id, owner_name, line in rows:
        ringing = call.answered_at - call.started_at if call.answered_at else None
        items.append(
            {
                **queries.plain(call),
                "contact_name": contact_name,
                "owner_id": owner_id,
                "manager_name": owner_name,
                "line": line,
                "ring_seconds": None if ringing is None else max(ringing.total_seconds(), 0),
                "voicemail_index": voicemails.get(call.id),
                "recording_index": recordings.get(call.id),
            }
        )
    next_after = items[-1]["id"] if len(items) == wanted.limit else None
    return {"items": items, "next_after": next_after}


def _places(session: Session, calls: list[Call], file: str) -> dict[int, int]:
    """Where each call's ``file`` (its voicemail or recording) is among its message's
    attachments (call id -> index)."""
    wanted = {c.id: c for c in calls if getattr(c, file) and c.message_id is not None}
    if not wanted:
        return {}
    message_ids = {c.message_id for c in wanted.values()}
    attachments: dict[int, list[dict[str, Any]]] = {}
    query = select(Message.id, Message.attachments).where(Message.id.in_(message_ids))
    for message_id, files in session.execute(query):
        attachments[message_id] = files
    found: dict[int, int] = {}
    for call_id, call in wanted.items():
        key = getattr(call, file).get("storage_key")
        assert call.message_id is not None
        for index, attachment in enumerate(attachments.get(call.message_id) or []):
            if key and isinstance(attachment, dict) and attachment.get("storage_key") == key:
                found[call_id] = index
                break
    return found
