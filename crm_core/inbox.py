"""The inbox's read models: the conversation list with unread counts, a contact's whole
history across channels, the contact card and the funnel board. Every query carries the
viewer's scope (:mod:`crm_core.access`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import ColumnElement, case, func, select, true
from sqlalchemy.orm import Session, aliased

from crm_core.access import Viewer, conversation_scope, deal_scope, task_scope
from crm_core.enums import ConversationStatus, Direction
from crm_core.models import (
    ChannelAccount,
    Contact,
    Conversation,
    ConversationRead,
    Deal,
    Funnel,
    Manager,
    Message,
    Stage,
    Task,
)
from crm_core.queries import Row, contact_detail, plain

View = Literal["mine", "unassigned", "team", "all"]
VIEWS: tuple[View, ...] = ("mine", "unassigned", "team", "all")


@dataclass(frozen=True, slots=True)
class InboxFilter:
    view: View = "all"
    channel: str | None = None
    status: ConversationStatus | None = None
    limit: int = 100


def _unread_where(viewer: Viewer) -> tuple[ColumnElement[bool], ...]:
    """The conversation's inbound messages after the viewer's read marker (correlated to
    the outer ``conversations`` row)."""
    read_upto = (
        select(ConversationRead.last_read_message_id)
        .where(
            ConversationRead.conversation_id == Message.conversation_id,
            ConversationRead.manager_id == viewer.manager_id,
        )
        .scalar_subquery()
    )
    return (
        Message.conversation_id == Conversation.id,
        Message.direction == Direction.INBOUND,
        Message.id > func.coalesce(read_upto, 0),
    )


def _unread(viewer: Viewer) -> Any:
    """How many unread messages, per conversation (a scalar subquery)."""
    return select(func.count(Message.id)).where(*_unread_where(viewer)).scalar_subquery()


def _view(viewer: Viewer, view: View) -> ColumnElement[bool]:
    if view == "mine":
        return Conversation.assignee_id == viewer.manager_id
    if view == "unassigned":
        return Conversation.assignee_id.is_(None)
    if view == "team":
        return Conversation.team_id == viewer.team_id
    return true()


def inbox(session: Session, viewer: Viewer, wanted: InboxFilter) -> Row:
    """The conversations of one view, most recent activity first, and per view how many
    conversations that are not closed have unread messages."""
    unread = _unread(viewer).label("unread")
    assignee = aliased(Manager)
    last_text = (
        select(Message.text)
        .where(Message.conversation_id == Conversation.id, Message.direction != Direction.NOTE)
        .order_by(Message.id.desc())
        .limit(1)
        .scalar_subquery()
        .label("last_message_text")
    )
    # The page's ids first: the per-row subqueries below then run for the page only
    # (SQLite would otherwise compute them for every row it sorts).
    newest = (Conversation.last_message_at.desc(), Conversation.id.desc())
    page = (
        select(Conversation.id)
        .where(conversation_scope(viewer), _view(viewer, wanted.view))
        .order_by(*newest)
        .limit(wanted.limit)
    )
    if wanted.channel is not None:
        page = page.join(
            ChannelAccount, ChannelAccount.id == Conversation.channel_account_id
        ).where(ChannelAccount.channel == wanted.channel)
    if wanted.status is not None:
        page = page.where(Conversation.status == wanted.status)
    query = (
        select(
            Conversation,
            ChannelAccount.channel,
            ChannelAccount.key,
            Contact.name,
            assignee.name,
            unread,
            last_text,
        )
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(assignee, assignee.id == Conversation.assignee_id)
        .where(Conversation.id.in_(page.scalar_subquery()))
        .order_by(*newest)
    )
    items = [
        {
            **plain(conversation),
            "channel": channel,
            "channel_account": key,
            "contact_name": contact_name,
            "assignee_name": assignee_name,
            "unread": count,
            "last_message_text": (text or "")[:200],
        }
        for conversation, channel, key, contact_name, assignee_name, count, text in session.execute(
            query
        )
    ]
    return {"items": items, "counts": _counts(session, viewer)}


def _counts(session: Session, viewer: Viewer) -> dict[str, int]:
    """Per view, the conversations (not closed) with messages the viewer has not read."""
    has_unread = select(Message.id).where(*_unread_where(viewer)).exists()
    columns = [
        func.coalesce(func.sum(case((_view(viewer, view), 1), else_=0)), 0) for view in VIEWS
    ]
    row = session.execute(
        select(*columns).where(
            conversation_scope(viewer),
            Conversation.status != ConversationStatus.CLOSED,
            has_unread,
        )
    ).one()
    return {view: int(value) for view, value in zip(VIEWS, row, strict=True)}


def timeline(
    session: Session, viewer: Viewer, contact_id: int, before: int | None, limit: int
) -> Row:
    """The contact's messages across every conversation the viewer may see, oldest first
    within the page; ``next_before`` pages back in time."""
    author = aliased(Manager)
    query = (
        select(Message, ChannelAccount.channel, ChannelAccount.key, author.name)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelAccount, ChannelAccount.id == Message.channel_account_id)
        .outerjoin(author, author.id == Message.author_manager_id)
        .where(Conversation.contact_id == contact_id, conversation_scope(viewer))
        .order_by(Message.id.desc())
        .limit(limit + 1)
    )
    if before is not None:
        query = query.where(Message.id < before)
    rows = list(session.execute(query))
    more = len(rows) > limit
    rows = rows[:limit]
    items = [
        {**plain(message), "channel": channel, "channel_account": key, "author_name": name}
        for message, channel, key, name in reversed(rows)
    ]
    return {"items": items, "next_before": rows[-1][0].id if more and rows else None}


def contact_card(session: Session, viewer: Viewer, contact_id: int) -> Row | None:
    """The contact (identities, attribution, merges) with the deals, tasks and
    conversations the viewer may see, and the accounts a reply could go out by."""
    detail = contact_detail(session, viewer, contact_id)
    if detail is None:
        return None
    deals = session.scalars(
        select(Deal).where(Deal.contact_id == contact_id, deal_scope(viewer)).order_by(Deal.id)
    )
    tasks = session.scalars(
        select(Task).where(Task.contact_id == contact_id, task_scope(viewer)).order_by(Task.id)
    )
    conversations = session.execute(
        select(Conversation, ChannelAccount.channel, ChannelAccount.key)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .where(Conversation.contact_id == contact_id, conversation_scope(viewer))
        .order_by(Conversation.id)
    )
    # A flagged identity (the client blocked the bot, the address bounced) reaches nobody:
    # its accounts are offered no more, and named, until a manager clears the mark.
    kinds = {i["kind"] for i in detail["identities"] if i["unreachable_at"] is None}
    flagged = {i["kind"] for i in detail["identities"]} - kinds
    accounts = session.scalars(select(ChannelAccount).order_by(ChannelAccount.id)).all()
    reachable = [
        {"channel": account.channel, "channel_account": account.key}
        for account in accounts
        if _REACHES.get(account.channel) in kinds
    ]
    unreachable = [
        {"channel": account.channel, "channel_account": account.key}
        for account in accounts
        if _REACHES.get(account.channel) in flagged
    ]
    return {
        **detail,
        "deals": [plain(d) for d in deals],
        "tasks": [plain(t) for t in tasks],
        "conversations": [
            {**plain(c), "channel": channel, "channel_account": key}
            for c, channel, key in conversations
        ],
        "reachable_accounts": reachable,
        "unreachable_accounts": unreachable,
    }


# The identity a reply by each channel needs (see crm_core.replies).
_REACHES = {"telegram": "telegram", "email": "email", "phone": "phone", "site_chat": "site_visitor"}


def board(session: Session, viewer: Viewer, funnel_code: str, per_stage: int = 50) -> Row | None:
    """A funnel's stages in order, each with how many deals the viewer may see in it and
    the most recently changed ``per_stage`` of them."""
    funnel = session.scalar(select(Funnel).where(Funnel.code == funnel_code))
    if funnel is None:
        return None
    stages = list(
        session.scalars(select(Stage).where(Stage.funnel_id == funnel.id).order_by(Stage.position))
    )
    counts = dict(
        session.execute(
            select(Deal.stage_id, func.count(Deal.id))
            .where(Deal.funnel_id == funnel.id, deal_scope(viewer))
            .group_by(Deal.stage_id)
        ).all()
    )
    owner = aliased(Manager)
    columns = []
    for stage in stages:
        rows = session.execute(
            select(Deal, Contact.name, owner.name)
            .join(Contact, Contact.id == Deal.contact_id)
            .outerjoin(owner, owner.id == Deal.owner_id)
            .where(Deal.stage_id == stage.id, deal_scope(viewer))
            .order_by(Deal.updated_at.desc(), Deal.id.desc())
            .limit(per_stage)
        )
        deals = [
            {**plain(deal), "contact_name": contact_name, "owner_name": owner_name}
            for deal, contact_name, owner_name in rows
        ]
        columns.append(
            {**plain(stage, skip=("funnel_id",)), "count": counts.get(stage.id, 0), "deals": deals}
        )
    return {"funnel": plain(funnel), "stages": columns}


def managers(session: Session) -> list[Row]:
    rows = session.scalars(select(Manager).order_by(Manager.name, Manager.id))
    return [
        {"id": m.id, "name": m.name, "role": m.role, "team_id": m.team_id, "active": m.active}
        for m in rows
    ]


def message_in_scope(session: Session, viewer: Viewer, message_id: int) -> Message | None:
    """A message of a conversation the viewer may see (for attachment downloads)."""
    return session.scalar(
        select(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .where(Message.id == message_id, conversation_scope(viewer))
    )
