"""Read models for the API: pages of contacts, conversations, deals and tasks as plain data."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from crm_core.access import (
    Viewer,
    contact_scope,
    conversation_scope,
    deal_scope,
    task_scope,
)
from crm_core.list_filters import EVERY_CONTACT, EVERY_DEAL, ContactFilter, DealFilter
from crm_core.models import (
    AuditEntry,
    Base,
    ChannelAccount,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Deal,
    DealStageChange,
    Funnel,
    Message,
    Stage,
    Task,
    Touch,
)

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """Keyset pagination: items with ids above ``after``, ``next_after`` for the next page."""

    items: list[Row]
    next_after: int | None

    def as_json(self) -> Row:
        return {"items": self.items, "next_after": self.next_after}


def plain(obj: Base, *, skip: Sequence[str] = ()) -> Row:
    """A table row as JSON-ready data (datetimes as ISO 8601, decimals as strings)."""
    out: Row = {}
    for column in obj.__table__.columns:
        if column.key in skip:
            continue
        value = getattr(obj, column.key)
        if isinstance(value, datetime):
            value = value.isoformat()
        elif value is not None and not isinstance(value, (int, str, bool, float, list, dict)):
            value = str(value)
        out[column.key] = value
    return out


def _conversation(conversation: Conversation) -> Row:
    """A conversation with its first-response time in seconds (None until answered)."""
    answered = conversation.first_response_at
    seconds = (answered - conversation.opened_at).total_seconds() if answered else None
    return {**plain(conversation), "first_response_seconds": seconds}


def _page(
    session: Session, query: Select[Any], model: Any, after: int, limit: int
) -> tuple[list[Any], int | None]:
    rows = list(
        (session.scalars(query.where(model.id > after).order_by(model.id).limit(limit + 1))).all()
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)


def contacts_page(
    session: Session,
    viewer: Viewer,
    after: int,
    limit: int,
    wanted: ContactFilter = EVERY_CONTACT,
) -> Page:
    query = select(Contact).where(
        Contact.merged_into_id.is_(None), contact_scope(viewer), *wanted.conditions()
    )
    contacts, next_after = _page(session, query, Contact, after, limit)
    identities = _identities_of(session, [c.id for c in contacts])
    items = [{**plain(c), "identities": identities[c.id]} for c in contacts]
    return Page(items, next_after)


def contact_detail(session: Session, viewer: Viewer, contact_id: int) -> Row | None:
    contact = session.scalar(select(Contact).where(Contact.id == contact_id, contact_scope(viewer)))
    if contact is None:
        return None
    identities = _identities_of(session, [contact_id])
    touches = (
        session.scalars(
            select(Touch)
            .where(Touch.contact_id == contact_id)
            .order_by(Touch.occurred_at, Touch.id)
        )
    ).all()
    merges = (
        session.scalars(
            select(ContactMerge)
            .where(
                (ContactMerge.survivor_id == contact_id) | (ContactMerge.merged_id == contact_id)
            )
            .order_by(ContactMerge.id)
        )
    ).all()
    ordered = [plain(t) for t in touches]
    first, last = (ordered[0], ordered[-1]) if ordered else (None, None)
    return {
        **plain(contact),
        "identities": identities[contact_id],
        "first_touch": first,
        "last_touch": last,
        "touches": ordered,
        "merges": [plain(m, skip=("moved",)) for m in merges],
    }


def _identities_of(session: Session, contact_ids: list[int]) -> dict[int, list[Row]]:
    grouped: dict[int, list[Row]] = defaultdict(list)
    if contact_ids:
        rows = session.scalars(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id.in_(contact_ids))
            .order_by(ContactIdentity.id)
        )
        for identity in rows:
            grouped[identity.contact_id].append(identity_row(identity))
    return grouped


def identity_row(identity: ContactIdentity) -> Row:
    """An identity as the API shows it: unreachable (the client blocked the bot, the
    address bounced) with the reason and the time, or reachable (both null)."""
    flagged = identity.unreachable_at
    return {
        "id": identity.id,
        "kind": identity.kind,
        "value": identity.value,
        "unreachable_at": flagged.isoformat() if flagged is not None else None,
        "unreachable_reason": identity.unreachable_reason if flagged is not None else None,
    }


def conversations_page(
    session: Session,
    viewer: Viewer,
    after: int,
    limit: int,
    *,
    status: str | None = None,
    contact_id: int | None = None,
) -> Page:
    query = select(Conversation).where(conversation_scope(viewer))
    if status is not None:
        query = query.where(Conversation.status == status)
    if contact_id is not None:
        query = query.where(Conversation.contact_id == contact_id)
    conversations, next_after = _page(session, query, Conversation, after, limit)
    return Page([_conversation(c) for c in conversations], next_after)


def conversation_detail(
    session: Session, viewer: Viewer, conversation_id: int, after: int, limit: int
) -> Row | None:
    conversation = session.scalar(
        select(Conversation).where(Conversation.id == conversation_id, conversation_scope(viewer))
    )
    if conversation is None:
        return None
    account = session.get(ChannelAccount, conversation.channel_account_id)
    messages, next_after = _page(
        session,
        select(Message).where(Message.conversation_id == conversation_id),
        Message,
        after,
        limit,
    )
    return {
        **_conversation(conversation),
        "channel": account.channel if account else None,
        "channel_account": account.key if account else None,
        "messages": Page([plain(m) for m in messages], next_after).as_json(),
    }


def deals_page(
    session: Session,
    viewer: Viewer,
    after: int,
    limit: int,
    *,
    funnel: str | None = None,
    stage: str | None = None,
    contact_id: int | None = None,
    wanted: DealFilter = EVERY_DEAL,
) -> Page:
    query = select(Deal).where(deal_scope(viewer), *wanted.conditions())
    if funnel is not None or stage is not None:
        query = query.join(Funnel, Funnel.id == Deal.funnel_id).join(
            Stage, Stage.id == Deal.stage_id
        )
        if funnel is not None:
            query = query.where(Funnel.code == funnel)
        if stage is not None:
            query = query.where(Stage.code == stage)
    if contact_id is not None:
        query = query.where(Deal.contact_id == contact_id)
    deals, next_after = _page(session, query, Deal, after, limit)
    return Page([plain(d) for d in deals], next_after)


def deal_detail(session: Session, viewer: Viewer, deal_id: int) -> Row | None:
    deal = session.scalar(select(Deal).where(Deal.id == deal_id, deal_scope(viewer)))
    if deal is None:
        return None
    history = (
        session.scalars(
            select(DealStageChange)
            .where(DealStageChange.deal_id == deal_id)
            .order_by(DealStageChange.id)
        )
    ).all()
    changes = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.entity_type == "deal", AuditEntry.entity_id == deal_id)
        .order_by(AuditEntry.id)
    ).all()
    return {
        **plain(deal),
        "stage_history": [plain(h) for h in history],
        # who changed what, when (title, amount, owner, product...; moves are above)
        "history": [
            {
                "at": c.occurred_at.isoformat(),
                "actor": c.actor,
                "action": c.action,
                "details": c.changes,
            }
            for c in changes
        ],
    }


def tasks_page(
    session: Session,
    viewer: Viewer,
    after: int,
    limit: int,
    *,
    status: str | None = None,
    assignee_id: int | None = None,
    deal_id: int | None = None,
    overdue_at: datetime | None = None,
) -> Page:
    """``overdue_at``: only open tasks due before that moment."""
    query = select(Task).where(task_scope(viewer))
    if overdue_at is not None:
        query = query.where(Task.status == "open", Task.due_at < overdue_at)
    if status is not None:
        query = query.where(Task.status == status)
    if assignee_id is not None:
        query = query.where(Task.assignee_id == assignee_id)
    if deal_id is not None:
        query = query.where(Task.deal_id == deal_id)
    tasks, next_after = _page(session, query, Task, after, limit)
    return Page([plain(t) for t in tasks], next_after)


def funnels(session: Session) -> list[Row]:
    all_funnels = (session.scalars(select(Funnel).order_by(Funnel.position))).all()
    stages = (session.scalars(select(Stage).order_by(Stage.funnel_id, Stage.position))).all()
    by_funnel: dict[int, list[Row]] = defaultdict(list)
    for stage in stages:
        by_funnel[stage.funnel_id].append(plain(stage, skip=("funnel_id",)))
    return [{**plain(f), "stages": by_funnel[f.id]} for f in all_funnels]
