"""Parked inbound items: what a channel could not take, kept with the reason.

Rule 9 of the house: no poisoned item stalls its channel. A channel that cannot take one
item of a batch (a lead the Graph API refuses) records it here, takes the rest and moves
on. An error that can heal (the peer's 5xx, a timeout) leaves the item ``retrying``: it is
due again after a backoff, until ``max_attempts`` failures park it. An error that cannot
heal (the peer's 4xx, a lead without a phone or an email) parks it at once. An admin
lists them (``GET /api/v1/parked``) and may give one a fresh start
(``POST /api/v1/parked/{id}/retry``); an item taken at last is removed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.models import ParkedItem
from crm_core.queries import Page, plain
from crm_core.tables import insert_new, parked_items
from crm_core.text import scrubbed

RETRYING = "retrying"
PARKED = "parked"
STATUSES = (RETRYING, PARKED)
FIRST_BACKOFF = timedelta(minutes=1)
LONGEST_BACKOFF = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class Failure:
    """One item a channel could not take, and whether the error can heal."""

    channel: str
    account: str
    item_key: str
    reason: str
    healable: bool
    detail: dict[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Due:
    """An item claimed for one more attempt."""

    id: int
    account: str
    item_key: str
    attempts: int
    first_failed_at: datetime
    detail: dict[str, Any]


def backoff(attempts: int) -> timedelta:
    """1 minute after the first failure, doubling, at most an hour."""
    return min(FIRST_BACKOFF * (1 << min(max(attempts - 1, 0), 16)), LONGEST_BACKOFF)


def park(
    session: Session, failure: Failure, now: datetime, max_attempts: int, *, failures: int = 1
) -> ParkedItem:
    """Record ``failures`` more failures of the item (more than one when the channel
    counted its attempts itself): ``retrying`` while it can heal and has attempts left,
    ``parked`` otherwise. Safe when two processes record the same item: the row is
    inserted if missing, then locked, then changed."""
    key = _text(failure.item_key, 200)
    reason = _text(failure.reason, 500)
    detail = {k: None if v is None else _text(v, 200) for k, v in failure.detail.items()}
    table = parked_items
    session.execute(
        insert_new(session, table, ["channel", "account", "item_key"]).values(
            channel=failure.channel,
            account=failure.account,
            item_key=key,
            status=RETRYING,
            reason=reason,
            attempts=0,
            detail=detail,
            first_failed_at=now,
            last_failed_at=now,
            next_attempt_at=None,
        )
    )
    row = session.scalars(
        select(ParkedItem)
        .where(
            ParkedItem.channel == failure.channel,
            ParkedItem.account == failure.account,
            ParkedItem.item_key == key,
        )
        .with_for_update()
    ).one()
    row.attempts += max(1, failures)
    row.reason = reason
    row.detail = detail or row.detail
    row.last_failed_at = now
    if failure.healable and row.attempts < max_attempts:
        row.status = RETRYING
        row.next_attempt_at = now + backoff(row.attempts)
    else:
        row.status = PARKED
        row.next_attempt_at = None
    session.flush()
    return row


def taken(session: Session, channel: str, account: str, item_key: str) -> bool:
    """The item was taken at last: it is no longer parked."""
    done = session.execute(
        delete(ParkedItem).where(
            ParkedItem.channel == channel,
            ParkedItem.account == account,
            ParkedItem.item_key == _text(item_key, 200),
        )
    )
    return bool(getattr(done, "rowcount", 0))


def is_parked(session: Session, channel: str, account: str, item_key: str) -> bool:
    found = session.scalar(
        select(ParkedItem.id).where(
            ParkedItem.channel == channel,
            ParkedItem.account == account,
            ParkedItem.item_key == _text(item_key, 200),
        )
    )
    return found is not None


def claim_due(
    session: Session,
    channel: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    *,
    account: str | None = None,
    prefix: str | None = None,
    not_prefix: str | None = None,
) -> list[Due]:
    """Items of ``channel`` due for another attempt; each is pushed ``lease`` ahead, so
    that another process polling at the same time does not take it too. ``account``,
    ``prefix`` and ``not_prefix`` (of the item key) keep to one kind of item."""
    query = select(ParkedItem).where(
        ParkedItem.channel == channel,
        ParkedItem.status == RETRYING,
        ParkedItem.next_attempt_at <= now,
    )
    if account is not None:
        query = query.where(ParkedItem.account == account)
    if prefix is not None:
        query = query.where(ParkedItem.item_key.startswith(prefix, autoescape=True))
    if not_prefix is not None:
        query = query.where(~ParkedItem.item_key.startswith(not_prefix, autoescape=True))
    rows = session.scalars(
        query.order_by(ParkedItem.next_attempt_at, ParkedItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for row in rows:
        row.next_attempt_at = now + lease
    session.flush()
    return [
        Due(r.id, r.account, r.item_key, r.attempts, r.first_failed_at, dict(r.detail))
        for r in rows
    ]


def retry_now(session: Session, journal: Journal, item_id: int) -> ParkedItem | None:
    """An admin's fresh start: the item is due at once, with the whole retry budget."""
    row = session.get(ParkedItem, item_id, with_for_update=True)
    if row is None:
        return None
    row.status = RETRYING
    row.attempts = 0
    row.next_attempt_at = journal.now
    session.flush()
    journal.record(
        "parked_item.retried",
        "parked_item",
        row.id,
        {"channel": row.channel, "account": row.account, "item_key": row.item_key},
    )
    return row


def drop(session: Session, journal: Journal, item_id: int) -> bool:
    """An admin gives the item up for good: it leaves the list and is not tried again
    (a message keeps its failed attachment; a dropped lead, update or mail is not stored)."""
    row = session.get(ParkedItem, item_id, with_for_update=True)
    if row is None:
        return False
    journal.record(
        "parked_item.dropped",
        "parked_item",
        row.id,
        {
            "channel": row.channel,
            "account": row.account,
            "item_key": row.item_key,
            "reason": row.reason,
        },
    )
    session.delete(row)
    return True


def parked_page(
    session: Session,
    after: int,
    limit: int,
    *,
    channel: str | None = None,
    status: str | None = None,
) -> Page:
    query = select(ParkedItem).where(ParkedItem.id > after)
    if channel is not None:
        query = query.where(ParkedItem.channel == channel)
    if status is not None:
        query = query.where(ParkedItem.status == status)
    rows = list(session.scalars(query.order_by(ParkedItem.id).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([plain(r) for r in rows], rows[-1].id if more and rows else None)


def _text(value: str, limit: int) -> str:
    return scrubbed(value)[:limit]
