"""The statements of the ingest transaction, built once (see :mod:`crm_core.fastsql`)."""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import String, Table, and_, bindparam, func, or_, select, update

from crm_core import tables as t
from crm_core.enums import ConversationStatus, Direction, Role, StageKind
from crm_core.fastsql import Prepared, Raw
from routing import Candidate

_LIVE = (ConversationStatus.OPEN.value, ConversationStatus.PENDING.value)

ACCOUNT = Prepared(
    select(t.channel_accounts.c.id).where(
        t.channel_accounts.c.channel == bindparam("channel"),
        t.channel_accounts.c.key == bindparam("key"),
    )
)
REPEAT = Prepared(
    select(
        t.messages.c.id,
        t.conversations.c.id,
        t.conversations.c.contact_id,
        t.conversations.c.assignee_id,
    )
    .join(t.conversations, t.conversations.c.id == t.messages.c.conversation_id)
    .where(
        t.messages.c.channel_account_id == bindparam("account"),
        t.messages.c.direction == Direction.INBOUND.value,
        t.messages.c.external_id == bindparam("external_id"),
    )
)


@lru_cache(maxsize=32)
def known_identities(count: int) -> Prepared:
    """Contacts owning any of ``count`` (kind, value) pairs, through the unique index."""
    # OR of (kind, value) pairs: both SQLite and PostgreSQL search the unique index per
    # pair (SQLite scans the table for a row-value IN list).
    pairs = [
        and_(
            t.identities.c.kind == bindparam(f"kind{i}", type_=String()),
            t.identities.c.value == bindparam(f"value{i}", type_=String()),
        )
        for i in range(count)
    ]
    return Prepared(
        select(
            t.identities.c.kind,
            t.identities.c.value,
            t.identities.c.contact_id,
            t.contacts.c.owner_id,
            t.contacts.c.name,
            t.contacts.c.company,
            t.contacts.c.segment,
            t.identities.c.unreachable_at.is_not(None),
            t.identities.c.handle,
        )
        .join(t.contacts, t.contacts.c.id == t.identities.c.contact_id)
        .where(or_(*pairs))
    )


CONTACT = select(
    t.contacts.c.id,
    t.contacts.c.owner_id,
    t.contacts.c.name,
    t.contacts.c.company,
    t.contacts.c.segment,
).where(t.contacts.c.id == bindparam("id"))
LIVE_CONVERSATION = Prepared(
    select(t.conversations.c.id, t.conversations.c.assignee_id, t.conversations.c.team_id)
    .where(
        t.conversations.c.contact_id == bindparam("contact"),
        t.conversations.c.channel_account_id == bindparam("account"),
        t.conversations.c.status != ConversationStatus.CLOSED.value,
    )
    .order_by(t.conversations.c.id.desc())
    .limit(1)
)
OPEN_LOAD = (
    select(func.count())
    .where(
        t.conversations.c.assignee_id == t.managers.c.id,
        t.conversations.c.status.in_([bindparam(f"live_{s}", s) for s in _LIVE]),
    )
    .correlate(t.managers)
    .scalar_subquery()
)
CANDIDATES = Prepared(
    select(
        t.managers.c.id,
        t.managers.c.team_id,
        t.managers.c.capacity,
        t.managers.c.last_assigned_at,
        t.teams.c.name,
        OPEN_LOAD,
    )
    .outerjoin(t.teams, t.teams.c.id == t.managers.c.team_id)
    .where(t.managers.c.active.is_(True), t.managers.c.role == Role.MANAGER.value)
)


def candidates(raw: Raw) -> list[Candidate]:
    """Every active manager as routing sees them: team, capacity, load, last assignment."""
    return [
        Candidate(
            manager_id=r[0],
            team_id=r[1],
            available=True,
            open_load=r[5],
            capacity=r[2],
            last_assigned_at=r[3],
            team=r[4],
        )
        for r in CANDIDATES.all(raw)
    ]


STAGE_BY_CODE = Prepared(
    select(t.stages.c.id).where(
        t.stages.c.funnel_id == bindparam("funnel"), t.stages.c.code == bindparam("code")
    )
)
OPEN_DEAL = Prepared(
    select(t.deals.c.id)
    .where(t.deals.c.contact_id == bindparam("contact"), t.deals.c.is_open.is_(True))
    .limit(1)
)
FIRST_STAGE = (
    select(t.stages.c.funnel_id, t.stages.c.id, t.stages.c.code)
    .join(t.funnels, t.funnels.c.id == t.stages.c.funnel_id)
    .where(
        t.funnels.c.code == bindparam("code"),
        t.funnels.c.active.is_(True),
        t.stages.c.kind == StageKind.OPEN.value,
    )
    .order_by(t.stages.c.position)
    .limit(1)
)


def _insert(table: Table, *, returning_id: bool = True) -> Prepared:
    """An insert of every column but the id, returning the new id."""
    columns = [c.name for c in table.columns if c.name != "id"]
    return Prepared.insert(table, columns, returning_id=returning_id)


INSERT_ACCOUNT = _insert(t.channel_accounts)
REACHABLE_AGAIN = Prepared(
    update(t.identities)
    .where(t.identities.c.kind == bindparam("kind"), t.identities.c.value == bindparam("value"))
    .values(unreachable_at=None, unreachable_reason=None)
)
SET_HANDLE = Prepared(
    update(t.identities)
    .where(t.identities.c.kind == bindparam("kind"), t.identities.c.value == bindparam("value"))
    .values(handle=bindparam("handle", type_=t.identities.c.handle.type))
)
INSERT_CONTACT = _insert(t.contacts)
INSERT_IDENTITY = _insert(t.identities, returning_id=False)
INSERT_TOUCH = _insert(t.touches)
INSERT_CONVERSATION = _insert(t.conversations)
INSERT_MESSAGE = _insert(t.messages)
INSERT_DEAL = _insert(t.deals)
INSERT_STAGE_CHANGE = _insert(t.stage_changes, returning_id=False)
INSERT_TASK = _insert(t.tasks)
MARK_ASSIGNED = Prepared(
    update(t.managers)
    .where(t.managers.c.id == bindparam("manager"))
    .values(last_assigned_at=bindparam("now", type_=t.managers.c.last_assigned_at.type))
)
SET_OWNER = Prepared(
    update(t.contacts)
    .where(t.contacts.c.id == bindparam("contact"), t.contacts.c.owner_id.is_(None))
    .values(owner_id=bindparam("owner", type_=t.contacts.c.owner_id.type))
)
TOUCH_CONVERSATION = Prepared(
    update(t.conversations)
    .where(
        t.conversations.c.id == bindparam("conversation"),
        t.conversations.c.last_message_at
        < bindparam("at", type_=t.conversations.c.last_message_at.type),
    )
    .values(last_message_at=bindparam("at"))
)
