"""Outbound webhooks: subscriptions, the fan-out of events, delivery with a log.

Every committed event (in an ``events`` outbox row) goes through :class:`WebhookFanOut`,
which writes one ``webhook.deliver`` outbox row per active subscription that wants
it (idempotency key ``"{subscription id}:{event key}"``, so a retried fan-out adds
nothing) and then hands the event on (to the in-process event bus).
:class:`WebhookDispatcher` is the relay's handler of those rows: it signs and posts
through a :class:`WebhookSender`, logs the attempt, raises on failure so that the
relay retries with its backoff, and disables a subscription that keeps failing.

The body and the ``webhook-id`` are fixed when the row is written, so every retry
of one event to one subscriber carries the same id and the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.clock import Clock
from crm_core.db import Database
from crm_core.enums import OutboxStatus
from crm_core.journal import Journal, unpacked
from crm_core.models import WebhookDelivery, WebhookSubscription
from crm_core.outbox import OutboxHandler, OutboxItem

log = logging.getLogger(__name__)

WEBHOOK_TOPIC_PREFIX = "webhook."
DELIVER_TOPIC = "webhook.deliver"
# The events the core announces today (for the documentation; any well-formed name is
# accepted, so that a subscription may name an event added later).
KNOWN_EVENTS = frozenset(
    {
        "contact.created",
        "contact.updated",
        "contact.merged",
        "contact.merge_undone",
        "conversation.created",
        "conversation.reassigned",
        "conversation.sla_breached",
        "message.created",
        "message.edited",
        "message.status_changed",
        "deal.created",
        "deal.stage_changed",
        "deal.won",
        "deal.lost",
        "deal.head_notified",
        "task.created",
        "task.changed",
        "task.reassigned",
        "task.completed",
        "task.reopened",
        "task.overdue",
    }
)
_NAME = re.compile(r"^(\*|[a-z][a-z_]*\.\*|[a-z][a-z_]*(\.[a-z][a-z_]*)+)$")


class SubscriptionError(ValueError):
    """A subscription that cannot be stored as asked; the message names the field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def check_events(events: Sequence[str]) -> list[str]:
    """Event names (``deal.won``), prefixes (``deal.*``) or ``*``; duplicates dropped."""
    if not events:
        raise SubscriptionError("events", "name at least one event (or '*')")
    for index, name in enumerate(events):
        if not _NAME.match(name) or len(name) > 64:
            raise SubscriptionError(
                f"events[{index}]",
                f"not an event name: {name!r}; e.g. {', '.join(sorted(KNOWN_EVENTS))}, "
                "or a prefix like 'deal.*', or '*'",
            )
    return list(dict.fromkeys(events))


def matches(patterns: Sequence[str], event: str) -> bool:
    for pattern in patterns:
        if pattern in ("*", event):
            return True
        if pattern.endswith(".*") and event.startswith(pattern[:-1]):
            return True
    return False


def subscription_json(sub: WebhookSubscription) -> dict[str, Any]:
    """The public view: never the secret."""
    return {
        "id": sub.id,
        "url": sub.url,
        "events": list(sub.events),
        "description": sub.description,
        "active": sub.active,
        "failure_count": sub.failure_count,
        "disabled_reason": sub.disabled_reason,
        "last_success_at": _iso(sub.last_success_at),
        "last_failure_at": _iso(sub.last_failure_at),
        "created_at": _iso(sub.created_at),
        "updated_at": _iso(sub.updated_at),
    }


def delivery_json(row: WebhookDelivery) -> dict[str, Any]:
    return {
        "id": row.id,
        "subscription_id": row.subscription_id,
        "webhook_id": row.webhook_id,
        "event": row.event,
        "attempt": row.attempt,
        "attempted_at": _iso(row.attempted_at),
        "ok": row.ok,
        "status_code": row.status_code,
        "error": row.error,
        "duration_ms": row.duration_ms,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def create_subscription(
    session: Session,
    journal: Journal,
    *,
    url: str,
    events: Sequence[str],
    secret: str,
    description: str = "",
    active: bool = True,
) -> WebhookSubscription:
    sub = WebhookSubscription(
        url=url,
        events=check_events(events),
        secret=secret,
        description=description,
        active=active,
        failure_count=0,
        disabled_reason=None,
        created_at=journal.now,
        updated_at=journal.now,
    )
    session.add(sub)
    session.flush()
    journal.record(
        "webhook_subscription.created",
        "webhook_subscription",
        sub.id,
        {"url": url, "events": sub.events, "active": active},
    )
    journal.flush(session)
    return sub


def update_subscription(
    session: Session,
    journal: Journal,
    subscription_id: int,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    description: str | None = None,
    active: bool | None = None,
) -> WebhookSubscription:
    """Change a subscription; turning it back on clears its failure count."""
    sub = session.get(WebhookSubscription, subscription_id, with_for_update=True)
    if sub is None:
        raise LookupError(f"webhook subscription {subscription_id} not found")
    changes: dict[str, Any] = {}
    if url is not None:
        sub.url = changes["url"] = url
    if events is not None:
        sub.events = changes["events"] = check_events(events)
    if description is not None:
        sub.description = changes["description"] = description
    if active is not None and active != sub.active:
        sub.active = changes["active"] = active
        if active:
            sub.failure_count = 0
            sub.disabled_reason = None
    sub.updated_at = journal.now
    journal.record("webhook_subscription.updated", "webhook_subscription", sub.id, changes)
    journal.flush(session)
    return sub


def list_subscriptions(session: Session, after: int, limit: int) -> list[WebhookSubscription]:
    return list(
        session.scalars(
            select(WebhookSubscription)
            .where(WebhookSubscription.id > after)
            .order_by(WebhookSubscription.id)
            .limit(limit)
        )
    )


def list_deliveries(
    session: Session, subscription_id: int, after: int, limit: int
) -> list[WebhookDelivery]:
    return list(
        session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.subscription_id == subscription_id, WebhookDelivery.id > after)
            .order_by(WebhookDelivery.id)
            .limit(limit)
        )
    )


@dataclass(frozen=True, slots=True)
class _Target:
    id: int
    events: tuple[str, ...]


def webhook_id_for(key: str) -> str:
    """A stable id per (subscription, event): the same on every retry and every fan-out."""
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:32]


def event_body(event: str, payload: Mapping[str, Any]) -> str:
    """The Standard Webhooks payload: ``{"type", "timestamp", "data"}``, serialized once."""
    data = {k: v for k, v in payload.items() if k not in ("event", "occurred_at")}
    return json.dumps(
        {"type": event, "timestamp": payload.get("occurred_at"), "data": data},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )


class WebhookFanOut:
    """The relay's ``events`` handler: deliveries for subscribers, then ``downstream``."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        downstream: OutboxHandler,
        on_commit: Callable[[], None] | None = None,
        cache_seconds: float = 1.0,
    ) -> None:
        self._db = db
        self._clock = clock
        self._downstream = downstream
        self._on_commit = on_commit
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, tuple[_Target, ...]] | None = None

    def invalidate(self) -> None:
        """Forget the cached subscriptions (after a change made by this process)."""
        self._cached = None

    async def __call__(self, item: OutboxItem) -> None:
        targets = await self._targets()
        rows: list[dict[str, Any]] = []
        now = self._clock.now()
        for key, payload in unpacked(item.payload, item.idempotency_key) if targets else ():
            event = str(payload.get("event"))
            body: str | None = None
            for target in targets:
                if not matches(target.events, event):
                    continue
                body = body or event_body(event, payload)
                rows.append(_delivery_row(target.id, key, event, body, now))
        if rows:
            await self._db.write(lambda session: _insert_new(session, rows))
            if self._on_commit is not None:
                self._on_commit()
        await self._downstream(item)

    async def _targets(self) -> tuple[_Target, ...]:
        cached = self._cached
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        targets = await self._db.read(_active_targets)
        self._cached = (time.monotonic() + self._cache_seconds, targets)
        return targets


def _delivery_row(
    subscription_id: int, event_key: str, event: str, body: str, now: datetime
) -> dict[str, Any]:
    """The outbox row of one event's delivery to one subscription."""
    key = f"{subscription_id}:{event_key}"
    return {
        "topic": DELIVER_TOPIC,
        "idempotency_key": key,
        "payload": {
            "subscription_id": subscription_id,
            "webhook_id": webhook_id_for(key),
            "event": event,
            "body": body,
        },
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
    }


def _active_targets(session: Session) -> tuple[_Target, ...]:
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.events).where(
            WebhookSubscription.active.is_(True)
        )
    )
    return tuple(_Target(row[0], tuple(row[1])) for row in rows)


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose idempotency key is new (a retried fan-out adds nothing)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(tables.outbox).on_conflict_do_nothing(index_elements=["idempotency_key"])
    session.execute(statement, rows)


class SendOutcome(Protocol):
    @property
    def status(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...

    @property
    def ok(self) -> bool: ...


class WebhookSender(Protocol):
    """Signs and posts one webhook (``webhooks.delivery.WebhookPoster``)."""

    async def deliver(
        self, url: str, secret: str, webhook_id: str, timestamp: int, body: bytes
    ) -> SendOutcome: ...


class WebhookDeliveryError(Exception):
    """The receiver did not take the webhook; the relay retries it."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    secret: str
    active: bool


class WebhookDispatcher:
    """The relay's handler of ``webhook.deliver`` rows."""

    def __init__(
        self, db: Database, clock: Clock, sender: WebhookSender, disable_after: int = 30
    ) -> None:
        self._db = db
        self._clock = clock
        self._sender = sender
        self._disable_after = disable_after

    async def __call__(self, item: OutboxItem) -> None:
        subscription_id = int(item.payload["subscription_id"])
        webhook_id = str(item.payload["webhook_id"])
        event = str(item.payload["event"])
        endpoint = await self._db.read(lambda s: _endpoint(s, subscription_id))
        if endpoint is None or not endpoint.active:
            log.info("webhook %s to subscription %s skipped: inactive", webhook_id, subscription_id)
            return
        now = self._clock.now()
        started = time.monotonic()
        outcome = await self._sender.deliver(
            endpoint.url,
            endpoint.secret,
            webhook_id,
            int(now.timestamp()),
            str(item.payload["body"]).encode(),
        )
        elapsed = int((time.monotonic() - started) * 1000)
        attempt = {
            "subscription_id": subscription_id,
            "webhook_id": webhook_id,
            "event": event,
            "attempt": item.attempt,
            "now": now,
            "ok": outcome.ok,
            "status": outcome.status,
            "error": outcome.error,
            "elapsed": elapsed,
        }
        disabled = await self._db.write(lambda s: self._log(s, attempt))
        if disabled:
            log.warning(
                "webhook subscription %s disabled after %d failures in a row",
                subscription_id,
                self._disable_after,
            )
        if not outcome.ok:
            raise WebhookDeliveryError(outcome.error or f"HTTP {outcome.status}")

    def _log(self, session: Session, attempt: dict[str, Any]) -> bool:
        """Keep the subscription's failure streak and log the attempt; True when disabled.

        The streak moves in one atomic UPDATE, taken before the log row is inserted: the
        subscription row is this transaction's only lock, so there is no read-then-lock
        (the log row's foreign key takes a share lock that a later FOR UPDATE would have
        to upgrade: two deliveries doing that at once deadlock) and no lost increment.
        """
        now: datetime = attempt["now"]
        subscription_id = attempt["subscription_id"]
        disabled = False
        if attempt["ok"]:
            found = session.execute(
                _STREAK.values(failure_count=0, last_success_at=now).where(
                    WebhookSubscription.id == subscription_id
                ),
                execution_options={"synchronize_session": False},
            ).first()
        else:
            found = session.execute(
                _STREAK.values(
                    failure_count=WebhookSubscription.failure_count + 1, last_failure_at=now
                ).where(WebhookSubscription.id == subscription_id),
                execution_options={"synchronize_session": False},
            ).first()
            if found is not None and found.active and found.failure_count >= self._disable_after:
                disabled = self._disable(session, subscription_id, found.failure_count, attempt)
        if found is None:
            return False  # the subscription is gone: nothing to log against
        session.add(
            WebhookDelivery(
                subscription_id=subscription_id,
                webhook_id=attempt["webhook_id"],
                event=attempt["event"],
                attempt=attempt["attempt"],
                attempted_at=now,
                ok=attempt["ok"],
                status_code=attempt["status"],
                error=attempt["error"],
                duration_ms=attempt["elapsed"],
            )
        )
        return disabled

    @staticmethod
    def _disable(
        session: Session, subscription_id: int, failures: int, attempt: dict[str, Any]
    ) -> bool:
        """Turn the subscription off (its row is already locked by this transaction)."""
        now: datetime = attempt["now"]
        reason = (
            f"{failures} failed attempts in a row; last: {attempt['error'] or attempt['status']}"
        )
        turned_off = session.execute(
            update(WebhookSubscription)
            .where(WebhookSubscription.id == subscription_id, WebhookSubscription.active.is_(True))
            .values(active=False, disabled_reason=reason[:500], updated_at=now)
            .returning(WebhookSubscription.id),
            execution_options={"synchronize_session": False},
        ).first()
        if turned_off is None:
            return False
        journal = Journal("system:webhooks", now)
        journal.record(
            "webhook_subscription.disabled",
            "webhook_subscription",
            subscription_id,
            {"failure_count": failures},
        )
        journal.flush(session)
        return True


_STREAK = update(WebhookSubscription).returning(
    WebhookSubscription.failure_count, WebhookSubscription.active
)


def _endpoint(session: Session, subscription_id: int) -> _Endpoint | None:
    sub = session.get(WebhookSubscription, subscription_id)
    return None if sub is None else _Endpoint(sub.url, sub.secret, sub.active)
