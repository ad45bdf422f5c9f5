"""The inbox's read models: the conversation list with unread counts, a contact's whole
history across channels, the contact card and the funnel board. Every query carries the
viewer's scope (:mod:`crm_core.access`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    select,
    true,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import KeyedColumnElement

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
from crm_core.models.base import UTCDateTime
from crm_core.queries import Row, contact_detail, plain

View = Literal["mine", "unassigned", "team", "all"]
VIEWS: tuple[View, ...] = ("mine", "unassigned", "team", "all")


@dataclass(frozen=True, slots=True)
class InboxFilter:
    view: View = "all"
    channel: str | None = None
    status: ConversationStatus | None = None
    limit: int = 100


# The rows the lists return are read as plain columns (no ORM objects: a page of 100
# conversations or a board of 400 deals spent most of its time building and reading them).
_CONVERSATION: tuple[KeyedColumnElement[Any], ...] = tuple(Conversation.__table__.columns)
_MESSAGE: tuple[KeyedColumnElement[Any], ...] = tuple(Message.__table__.columns)
_DEAL: tuple[KeyedColumnElement[Any], ...] = tuple(Deal.__table__.columns)
# Built once: an alias made per request costs more than the query it is used in.
_ASSIGNEE = aliased(Manager, name="assignee")
_AUTHOR = aliased(Manager, name="author")
_OWNER = aliased(Manager, name="owner")


_AS_IS = (int, str, bool, float, list, dict)


def _json_value(value: Any) -> Any:
    """As :func:`crm_core.queries.plain` shows a column's value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, _AS_IS):
        return str(value)
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _conversions(columns: Sequence[KeyedColumnElement[Any]]) -> list[tuple[str, Any]]:
    """The columns whose values :func:`plain` would change, and how: only those are
    touched per row (a datetime, a decimal; ids, texts and JSON pass as they are)."""
    out: list[tuple[str, Any]] = []
    for column in columns:
        if isinstance(column.type, UTCDateTime):
            out.append((column.key, _iso))
        elif isinstance(column.type, JSON):
            continue  # decoded JSON is lists, dicts, strings, numbers, booleans, None
        else:
            try:
                kind = column.type.python_type
            except NotImplementedError:
                kind = object
            if kind not in _AS_IS:
                out.append((column.key, _json_value))
    return out


def _plain_rows(
    session: Session,
    query: Select[Any],
    columns: Sequence[KeyedColumnElement[Any]],
    extra: Sequence[str],
    params: dict[str, Any] | None = None,
) -> list[Row]:
    """The rows of ``query`` (its first values are ``columns``, shown as :func:`plain`
    shows a table row, then the ``extra`` values as they are), read as plain tuples
    through the session's connection: no ORM objects or ORM result processing."""
    keys = [c.key for c in columns] + list(extra)
    conversions = _conversions(columns)
    rows = session.connection().execute(query, params).all()
    items = [dict(zip(keys, row, strict=True)) for row in rows]
    for item in items:
        for key, convert in conversions:
            item[key] = convert(item[key])
    return items


def _read_marker(viewer: Viewer) -> ColumnElement[bool]:
    """Joins the viewer's read marker to each ``conversations`` row (at most one: the
    primary key is the manager and the conversation)."""
    return and_(
        ConversationRead.conversation_id == Conversation.id,
        ConversationRead.manager_id == viewer.manager_id,
    )


def _unread_where() -> tuple[ColumnElement[bool], ...]:
    """The conversation's inbound messages after the viewer's read marker (correlated to
    the outer ``conversations`` row joined with :func:`_read_marker`): one range of the
    ``(conversation_id, direction, id)`` index."""
    return (
        Message.conversation_id == Conversation.id,
        Message.direction == Direction.INBOUND,
        Message.id > func.coalesce(ConversationRead.last_read_message_id, 0),
    )


def _view(viewer: Viewer, view: View) -> ColumnElement[bool]:
    if view == "mine":
        return Conversation.assignee_id == viewer.manager_id
    if view == "unassigned":
        return Conversation.assignee_id.is_(None)
    if view == "team":
        return Conversation.team_id == viewer.team_id
    return true()


def _shape(viewer: Viewer) -> Viewer:
    """The viewer as far as a query's scope goes: the read statements are built once per
    shape (building one costs about as much as SQLite takes to answer it)."""
    return Viewer(
        actor="",
        manager_id=viewer.manager_id,
        role=viewer.role,
        team_id=viewer.team_id,
        team_shared=viewer.team_shared,
    )


def inbox(session: Session, viewer: Viewer, wanted: InboxFilter) -> Row:
    """The conversations of one view, most recent activity first, and per view how many
    conversations that are not closed have unread messages."""
    query = _inbox_query(_shape(viewer), wanted)
    extra = ("channel", "channel_account", "contact_name", "assignee_name", "unread", "text")
    items = _plain_rows(session, query, _CONVERSATION, extra)
    for item in items:
        item["last_message_text"] = (item.pop("text") or "")[:200]
    return {"items": items, "counts": _counts(session, viewer)}


@lru_cache(maxsize=256)
def _inbox_query(viewer: Viewer, wanted: InboxFilter) -> Select[Any]:
    unread = select(func.count(Message.id)).where(*_unread_where()).scalar_subquery()
    last_text = (
        select(Message.text)
        .where(Message.conversation_id == Conversation.id, Message.direction != Direction.NOTE)
        .order_by(Message.id.desc())
        .limit(1)
        .scalar_subquery()
    )
    # The page's ids first, read in order from (last_message_at, id) or (assignee_id,
    # last_message_at, id): the per-row subqueries below then run for the page only.
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
    return (
        select(
            *_CONVERSATION,
            ChannelAccount.channel,
            ChannelAccount.key,
            Contact.name,
            _ASSIGNEE.name,
            unread,
            last_text,
        )
        .select_from(Conversation)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(_ASSIGNEE, _ASSIGNEE.id == Conversation.assignee_id)
        .outerjoin(ConversationRead, _read_marker(viewer))
        .where(Conversation.id.in_(page.scalar_subquery()))
        .order_by(*newest)
    )


def _counts(session: Session, viewer: Viewer) -> dict[str, int]:
    """Per view, the conversations (not closed) with messages the viewer has not read."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    row = session.connection().execute(_counts_query(_shape(viewer), sqlite)).one()
    return {view: int(value) for view, value in zip(VIEWS, row, strict=True)}


@lru_cache(maxsize=256)
def _counts_query(viewer: Viewer, sqlite: bool) -> Select[Any]:
    """The partial index of the conversations that are not closed, and per conversation
    one probe of the messages' (conversation_id, direction, id) index."""
    has_unread = select(Message.id).where(*_unread_where()).exists()
    columns = [
        func.coalesce(func.sum(case((_view(viewer, view), 1), else_=0)), 0) for view in VIEWS
    ]
    scope = conversation_scope(viewer)
    if sqlite and not viewer.sees_all:
        # SQLite plans each branch of a manager's "own or unassigned" apart, where the
        # partial index is not usable, and would read every closed conversation too: the
        # scope, made opaque to its planner, filters the partial index's rows instead.
        scope = case((scope, 1), else_=0) == 1
    return (
        select(*columns)
        .select_from(Conversation)
        .outerjoin(ConversationRead, _read_marker(viewer))
        .where(scope, Conversation.status != ConversationStatus.CLOSED, has_unread)
    )


def timeline(
    session: Session, viewer: Viewer, contact_id: int, before: int | None, limit: int
) -> Row:
    """The contact's messages across every conversation the viewer may see, oldest first
    within the page; ``next_before`` pages back in time."""
    params = {"contact_id": contact_id, "before": before, "limit": limit + 1}
    query = _timeline_query(_shape(viewer), before is not None)
    extra = ("channel", "channel_account", "author_name")
    items = _plain_rows(session, query, _MESSAGE, extra, params)
    more = len(items) > limit
    items = items[:limit]
    next_before = items[-1]["id"] if more and items else None
    items.reverse()
    return {"items": items, "next_before": next_before}


@lru_cache(maxsize=256)
def _timeline_query(viewer: Viewer, paged: bool) -> Select[Any]:
    query = (
        select(*_MESSAGE, ChannelAccount.channel, ChannelAccount.key, _AUTHOR.name)
        .select_from(Message)
        .join(Conversation, Conversation.id == Message.conversation_id)
        .join(ChannelAccount, ChannelAccount.id == Message.channel_account_id)
        .outerjoin(_AUTHOR, _AUTHOR.id == Message.author_manager_id)
        .where(Conversation.contact_id == bindparam("contact_id"), conversation_scope(viewer))
        .order_by(Message.id.desc())
        .limit(bindparam("limit", type_=Integer))
    )
    if paged:
        query = query.where(Message.id < bindparam("before"))
    return query


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
    # counted in the (funnel_id, stage_id, owner_id) index
    counts = dict(
        session.execute(
            select(Deal.stage_id, func.count(Deal.id))
            .where(Deal.funnel_id == funnel.id, deal_scope(viewer))
            .group_by(Deal.stage_id)
        ).all()
    )
    by_stage: dict[int, list[Row]] = {stage.id: [] for stage in stages}
    if stages:
        query = _board_deals(_shape(viewer), tuple(stage.id for stage in stages), per_stage)
        for deal in _plain_rows(session, query, _DEAL, ("contact_name", "owner_name")):
            by_stage[deal["stage_id"]].append(deal)
    columns = [
        {
            **plain(stage, skip=("funnel_id",)),
            "count": counts.get(stage.id, 0),
            "deals": by_stage[stage.id],
        }
        for stage in stages
    ]
    return {"funnel": plain(funnel), "stages": columns}


@lru_cache(maxsize=256)
def _board_deals(viewer: Viewer, stage_ids: tuple[int, ...], per_stage: int) -> Select[Any]:
    """Every stage's ``per_stage`` most recently changed deals in one statement: per stage,
    the first ids of its (stage_id, updated_at, id) index; then those deals' rows."""
    recent = (Deal.updated_at.desc(), Deal.id.desc())
    firsts = [
        select(Deal.id)
        .where(Deal.stage_id == stage_id, deal_scope(viewer))
        .order_by(*recent)
        .limit(per_stage)
        .subquery()
        for stage_id in stage_ids
    ]
    ids = union_all(*(select(first.c.id) for first in firsts))
    return (
        select(*_DEAL, Contact.name, _OWNER.name)
        .select_from(Deal)
        .join(Contact, Contact.id == Deal.contact_id)
        .outerjoin(_OWNER, _OWNER.id == Deal.owner_id)
        .where(Deal.id.in_(ids))
        .order_by(Deal.stage_id, *recent)
    )


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
