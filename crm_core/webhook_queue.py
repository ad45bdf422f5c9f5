"""An admin's hand on outbound webhooks: retry one, replay a period, delete, ping.

A retry or a replay writes new ``webhook.deliver`` outbox rows (or makes a waiting one due
now); each keeps the event's ``webhook-id`` and body, so a receiver that has the event
already can tell. They take their place in the order of their subscription's object like
any delivery (:mod:`crm_core.webhook_subscriptions`). Deleting a subscription drops its
deliveries that are not done; those done stay in the outbox.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select, true, update
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.enums import OutboxStatus
from crm_core.journal import EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX, Journal, unpacked
from crm_core.models import WebhookDelivery, WebhookSubscription
from crm_core.webhook_subscriptions import (
    delivery_row,
    event_body,
    group_key,
    insert_new,
    matches,
    not_in_flight,
    webhook_id_for,
)

log = logging.getLogger(__name__)

REPLAY_LIMIT = 10_000  # deliveries one replay writes at most; ``next_since`` continues it
_EVENT_ROWS = 500  # events rows read at a time


class QueueConflictError(Exception):
    """What was asked cannot be done in the state things are in (a 409)."""


@dataclass(frozen=True, slots=True)
class Queued:
    """What a retry or a replay wrote: how many deliveries, and where a replay stopped."""

    queued: int
    webhook_id: str | None = None
    next_since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "webhook_id": self.webhook_id,
            "next_since": None if self.next_since is None else self.next_since.isoformat(),
        }


def _subscription(session: Session, subscription_id: int) -> WebhookSubscription:
    sub = session.get(WebhookSubscription, subscription_id)
    if sub is None:
        raise LookupError(f"webhook subscription {subscription_id} not found")
    return sub


def retry_delivery(
    session: Session, journal: Journal, subscription_id: int, attempt_id: int
) -> Queued:
    """Send again the event of one logged attempt (``GET .../deliveries`` ids).

    Its delivery still waiting (or retrying) is made due now; one that is done (delivered
    or expired) is copied into a new delivery. Either way it goes out, in its order,
    when the subscription is on.
    """
    _subscription(session, subscription_id)
    attempt = session.get(WebhookDelivery, attempt_id)
    if attempt is None or attempt.subscription_id != subscription_id:
        raise LookupError(f"delivery {attempt_id} not found")
    if attempt.outbox_id is None:
        raise QueueConflictError(
            "this attempt is not tied to a queued delivery (a ping, or one logged before "
            "retries were kept): replay its period instead"
        )
    outbox = tables.outbox
    row = session.execute(select(outbox).where(outbox.c.id == attempt.outbox_id)).first()
    if row is None:
        raise QueueConflictError("its delivery is no longer kept: replay its period instead")
    now = journal.now
    if row.status == OutboxStatus.PENDING.value:
        if row.next_attempt_at > now:
            session.connection().execute(
                update(outbox)
                .where(
                    outbox.c.id == row.id,
                    outbox.c.status == OutboxStatus.PENDING.value,
                    or_(outbox.c.locked_until.is_(None), outbox.c.locked_until <= now),
                )
                .values(next_attempt_at=now)
            )
        queued = 0  # already queued: made due now
    else:
        copy = {
            "topic": row.topic,
            "idempotency_key": f"{row.idempotency_key}:retry:{uuid.uuid4().hex[:16]}"[:200],
            "payload": {**row.payload, "queued_at": now.isoformat()},
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "next_attempt_at": now,
            "locked_until": None,
            "last_error": None,
            "created_at": now,
            "delivered_at": None,
            "ordering_key": row.ordering_key,
            "sequence": row.sequence,
            "group_key": row.group_key,
        }
        session.connection().execute(tables.outbox.insert(), [copy])
        queued = 1
    journal.record(
        "webhook_subscription.retried",
        "webhook_subscription",
        subscription_id,
        {"delivery_id": attempt_id, "webhook_id": attempt.webhook_id},
    )
    journal.flush(session)
    return Queued(queued, attempt.webhook_id)


def replay_period(
    session: Session,
    journal: Journal,
    subscription_id: int,
    since: datetime,
    until: datetime | None = None,
) -> Queued:
    """New deliveries of the events committed in ``[since, until)`` (``until`` None: up to
    now) that the subscription wants (by its events today), in the order they happened;
    at most :data:`REPLAY_LIMIT`, then ``next_since`` says where to go on."""
    sub = _subscription(session, subscription_id)
    outbox = tables.outbox
    topics = or_(
        outbox.c.topic == EVENTS_TOPIC, outbox.c.topic.startswith(LEGACY_EVENT_TOPIC_PREFIX)
    )
    token = uuid.uuid4().hex[:16]
    now = journal.now
    rows: list[dict[str, Any]] = []
    after = 0
    next_since: datetime | None = None
    while next_since is None:
        batch = session.execute(
            select(outbox.c.id, outbox.c.idempotency_key, outbox.c.payload, outbox.c.created_at)
            .where(
                topics,
                outbox.c.created_at >= since,
                outbox.c.created_at < until if until is not None else true(),
                outbox.c.id > after,
            )
            .order_by(outbox.c.id)
            .limit(_EVENT_ROWS)
        ).all()
        for events_row in batch:
            wanted = [
                (key, payload)
                for key, payload in unpacked(events_row.payload, events_row.idempotency_key)
                if matches(sub.events, str(payload.get("event")))
            ]
            if rows and len(rows) + len(wanted) > REPLAY_LIMIT:
                next_since = events_row.created_at
                break
            for key, payload in wanted:
                body = event_body(str(payload.get("event")), payload)
                copy = f"replay:{token}"
                rows.append(delivery_row(sub.id, key, payload, body, now, events_row.id, copy))
            after = events_row.id
        if len(batch) < _EVENT_ROWS:
            break
    if rows:
        insert_new(session, rows)
    journal.record(
        "webhook_subscription.replayed",
        "webhook_subscription",
        sub.id,
        {
            "since": since.isoformat(),
            "until": None if until is None else until.isoformat(),
            "queued": len(rows),
        },
    )
    journal.flush(session)
    return Queued(len(rows), None, next_since)


def delete_subscription(session: Session, journal: Journal, subscription_id: int) -> int:
    """Delete the subscription, its delivery log and its deliveries not yet done (their
    count is returned); a relay sending one of them right now finds it gone."""
    sub = session.get(WebhookSubscription, subscription_id, with_for_update=True)
    if sub is None:
        raise LookupError(f"webhook subscription {subscription_id} not found")
    outbox = tables.outbox
    undone = not_in_flight(
        session,
        outbox.c.group_key == group_key(subscription_id),
        outbox.c.status == OutboxStatus.PENDING.value,
    )
    dropped = session.connection().execute(delete(outbox).where(outbox.c.id.in_(undone)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id))
    count = int(dropped.rowcount or 0)
    journal.record(
        "webhook_subscription.deleted",
        "webhook_subscription",
        sub.id,
        {"url": sub.url, "dropped_deliveries": count},
    )
    session.delete(sub)
    journal.flush(session)
    return count


@dataclass(frozen=True, slots=True)
class Ping:
    """A ``ping`` event to one subscription, ready to sign and post."""

    url: str
    secret: str
    webhook_id: str
    body: str


def ping_for(session: Session, subscription_id: int, now: datetime) -> Ping:
    sub = _subscription(session, subscription_id)
    webhook_id = webhook_id_for(f"{sub.id}:ping:{uuid.uuid4().hex}")
    body = event_body("ping", {"occurred_at": now.isoformat(), "subscription_id": sub.id})
    return Ping(sub.url, sub.secret, webhook_id, body)


def log_ping(
    session: Session,
    subscription_id: int,
    ping: Ping,
    now: datetime,
    outcome: tuple[bool, int | None, str | None, int],
) -> bool:
    """Log a ping's answer in the delivery log (not in the failure streak); False when
    the subscription is gone meanwhile."""
    if session.get(WebhookSubscription, subscription_id) is None:
        return False
    ok, status, error, elapsed = outcome
    session.add(
        WebhookDelivery(
            subscription_id=subscription_id,
            webhook_id=ping.webhook_id,
            event="ping",
            attempt=1,
            attempted_at=now,
            ok=ok,
            status_code=status,
            error=error,
            duration_ms=elapsed,
            outbox_id=None,
        )
    )
    return True
