"""Outbound webhooks: subscriptions, the fan-out of events, delivery with a log.

Every committed event (in an ``events`` outbox row) goes through :class:`WebhookFanOut`,
which writes one ``webhook.deliver`` outbox row per subscription that wants it, on or
off (idempotency key ``"{subscription id}:{event key}"``, so a retried fan-out adds
nothing) and then hands the event on (to the in-process event bus).
:class:`WebhookDispatcher` is the relay's handler of those rows: it signs and posts
through a :class:`WebhookSender`, logs the attempt, raises on failure so that the
relay retries with its backoff (for as long as the retention, not a number of
attempts), and disables a subscription that has failed for a real period (a count
*and* a duration, not a burst of attempts within a second).

Nothing is dropped: a delivery for a subscription that is off waits (the relay looks at
it again every :data:`WAIT_RECHECK`) and goes out when it is turned back on; one older
than the retention is marked ``expired`` and logged as such. Each row carries an
ordering key, ``webhook:{subscription}:{object}`` (the event's contact, else its deal,
conversation, task, message or call): the relay sends a row only when no earlier row
of the same key is pending, so one contact's events arrive in the order they happened.

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
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, literal, or_, select, update
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.clock import Clock
from crm_core.db import Database
from crm_core.enums import OutboxStatus
from crm_core.event_types import EVENT_DATA
from crm_core.journal import Journal, unpacked
from crm_core.models import WebhookDelivery, WebhookSubscription
from crm_core.outbox import Deferred, Expired, KeepTrying, OutboxHandler, OutboxItem

log = logging.getLogger(__name__)

WEBHOOK_TOPIC_PREFIX = "webhook."
DELIVER_TOPIC = "webhook.deliver"
_OFF = "waiting: the subscription is off"
DISABLE_AFTER_FAILURES = 30  # at least this many failed attempts in a row ...
DISABLE_AFTER = timedelta(hours=24)  # ... over at least this long turn a subscription off
RETENTION = timedelta(days=7)  # an undelivered webhook older than this is marked expired
WAIT_RECHECK = timedelta(minutes=15)  # how often a waiting delivery looks at its subscription
# The first of these in an event's data names the object whose events go out in order.
ORDERED_BY = ("contact_id", "deal_id", "conversation_id", "task_id", "message_id", "call_id")
# The events the core announces today, each with the type of its data (for the
# documentation; any well-formed name is accepted, so that a subscription may name an
# event added later).
KNOWN_EVENTS = frozenset(EVENT_DATA)
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
        "failing_since": _iso(sub.failing_since),
        "disabled_reason": sub.disabled_reason,
        "last_success_at": _iso(sub.last_success_at),
        "last_failure_at": _iso(sub.last_failure_at),
        "created_at": _iso(sub.created_at),
        "updated_at": _iso(sub.updated_at),
    }


def subscription_view(sub: WebhookSubscription, waiting: int) -> dict[str, Any]:
    """:func:`subscription_json` with the count of its deliveries not yet done."""
    return {**subscription_json(sub), "waiting_deliveries": waiting}


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
            sub.failing_since = None
            sub.disabled_reason = None
            session.flush()
            changes["released"] = release_waiting(session, sub.id, journal.now)
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


def group_key(subscription_id: int) -> str:
    """The outbox group of a subscription's deliveries (released and dropped together)."""
    return f"webhook:{subscription_id}"


def ordering_key(subscription_id: int, payload: Mapping[str, Any]) -> str | None:
    """``webhook:{subscription}:contact:{id}`` (or deal, conversation, ...), or None."""
    for name in ORDERED_BY:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return f"{group_key(subscription_id)}:{name.removesuffix('_id')}:{value}"
    return None


def not_in_flight(session: Session, *where: Any) -> Any:
    """The ids of outbox rows matching ``where`` that no relay holds now, in id order;
    on PostgreSQL locked with SKIP LOCKED: a row a relay is recording is left to it, so
    an admin's change never waits on a relay (and never takes rows in another order)."""
    outbox = tables.outbox
    ids = select(outbox.c.id).where(*where).order_by(outbox.c.id)
    if session.get_bind().dialect.name != "sqlite":
        ids = ids.with_for_update(skip_locked=True)
    return ids.scalar_subquery()


def release_waiting(session: Session, subscription_id: int, now: datetime) -> int:
    """Make the subscription's waiting deliveries due now (it was turned back on)."""
    outbox = tables.outbox
    idle = not_in_flight(
        session,
        outbox.c.group_key == group_key(subscription_id),
        outbox.c.status == OutboxStatus.PENDING.value,
        outbox.c.next_attempt_at > now,
    )
    released = session.connection().execute(
        update(outbox).where(outbox.c.id.in_(idle)).values(next_attempt_at=now)
    )
    return int(released.rowcount or 0)


def defer_waiting(session: Session, subscription_id: int, now: datetime, until: datetime) -> bool:
    """If the subscription is still off, make its due deliveries (those no relay holds) due
    at ``until`` and answer True; False when it has been turned on (or deleted) meanwhile.

    The subscription's row is share-locked first, as a change of it locks it first: a
    re-enable waits for this to commit and then releases what it deferred, or this sees
    it on and defers nothing.
    """
    found = session.execute(
        select(WebhookSubscription.active)
        .where(WebhookSubscription.id == subscription_id)
        .with_for_update(read=True)
    ).first()
    if found is None or found.active:
        return False
    outbox = tables.outbox
    due = not_in_flight(
        session,
        outbox.c.group_key == group_key(subscription_id),
        outbox.c.status == OutboxStatus.PENDING.value,
        outbox.c.next_attempt_at <= now,
        or_(outbox.c.locked_until.is_(None), outbox.c.locked_until <= now),
    )
    session.connection().execute(
        update(outbox).where(outbox.c.id.in_(due)).values(next_attempt_at=until, last_error=_OFF)
    )
    return True


def waiting_counts(session: Session, subscription_ids: Sequence[int]) -> dict[int, int]:
    """How many deliveries of each subscription are not done yet (waiting or retrying)."""
    outbox = tables.outbox
    keys = {group_key(i): i for i in subscription_ids}
    rows = session.execute(
        select(outbox.c.group_key, func.count())
        .where(outbox.c.group_key.in_(list(keys)), outbox.c.status == OutboxStatus.PENDING.value)
        .group_by(outbox.c.group_key)
    )
    counts = dict.fromkeys(subscription_ids, 0)
    for key, count in rows:
        counts[keys[str(key)]] = int(count)
    return counts


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
                rows.append(delivery_row(target.id, key, payload, body, now, item.id))
        if rows:
            await self._db.write(lambda session: insert_new(session, rows))
            if self._on_commit is not None:
                self._on_commit()
        await self._downstream(item)

    async def _targets(self) -> tuple[_Target, ...]:
        """The subscriptions, read after the event was committed (the relay claimed it): one
        committed before the event is among them. ``cache_seconds`` may keep them that long
        only where every change goes through :meth:`invalidate` (one process)."""
        cached = self._cached
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        targets = await self._db.read(_all_targets)
        if self._cache_seconds > 0:
            self._cached = (time.monotonic() + self._cache_seconds, targets)
        return targets


def delivery_row(
    subscription_id: int,
    event_key: str,
    payload: Mapping[str, Any],
    body: str,
    now: datetime,
    sequence: int,
    copy: str = "",
) -> dict[str, Any]:
    """The outbox row of one event's delivery to one subscription.

    ``sequence`` is the id of the events row (the order of the events); ``copy`` tells a
    retry or a replay (a new row, idempotency key ``...:{copy}``) from the first one; a
    copy keeps the event's ``webhook-id``, so that a receiver can tell it has it.
    """
    key = f"{subscription_id}:{event_key}"
    return {
        "topic": DELIVER_TOPIC,
        "idempotency_key": f"{key}:{copy}" if copy else key,
        "payload": {
            "subscription_id": subscription_id,
            "webhook_id": webhook_id_for(key),
            "event": str(payload.get("event")),
            "body": body,
            "queued_at": now.isoformat(),
        },
        "ordering_key": ordering_key(subscription_id, payload),
        "sequence": sequence,
        "group_key": group_key(subscription_id),
        "status": OutboxStatus.PENDING.value,
        "attempts": 0,
        "next_attempt_at": now,
        "locked_until": None,
        "last_error": None,
        "created_at": now,
        "delivered_at": None,
    }


def _all_targets(session: Session) -> tuple[_Target, ...]:
    """Every subscription, on or off: the deliveries of one that is off wait for it."""
    rows = session.execute(select(WebhookSubscription.id, WebhookSubscription.events))
    return tuple(_Target(row[0], tuple(row[1])) for row in rows)


def insert_new(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert the rows whose idempotency key is new (a retried fan-out adds nothing)."""
    session.execute(tables.insert_new(session, tables.outbox, ["idempotency_key"]), rows)


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


class WebhookDeliveryError(KeepTrying):
    """The receiver did not take the webhook; the relay retries it (until the retention)."""


@dataclass(frozen=True, slots=True)
class _Endpoint:
    url: str
    secret: str
    active: bool


class WebhookDispatcher:
    """The relay's handler of ``webhook.deliver`` rows.

    A subscription is disabled after ``disable_after`` failed attempts in a row that
    span at least ``failing_for`` (both: a burst of attempts within a second is not an
    outage). A delivery waits while its subscription is off and expires once older
    than ``retention``.
    """

    def __init__(
        self,
        db: Database,
        clock: Clock,
        sender: WebhookSender,
        disable_after: int = DISABLE_AFTER_FAILURES,
        *,
        failing_for: timedelta = DISABLE_AFTER,
        retention: timedelta = RETENTION,
        recheck: timedelta = WAIT_RECHECK,
    ) -> None:
        self._db = db
        self._clock = clock
        self._sender = sender
        self._disable_after = disable_after
        self._failing_for = failing_for
        self._retention = retention
        self._recheck = recheck

    async def __call__(self, item: OutboxItem) -> None:
        subscription_id = int(item.payload["subscription_id"])
        webhook_id = str(item.payload["webhook_id"])
        event = str(item.payload["event"])
        endpoint = await self._db.read(lambda s: _endpoint(s, subscription_id))
        if endpoint is None:
            log.info("webhook %s: subscription %s is gone", webhook_id, subscription_id)
            return
        now = self._clock.now()
        queued = _queued_at(item.payload)
        if queued is not None and now - queued >= self._retention:
            reason = f"expired: not delivered within the retention ({_span(self._retention)})"
            expiry = {
                "subscription_id": subscription_id,
                "webhook_id": webhook_id,
                "event": event,
                "attempt": item.attempt - 1,
                "now": now,
                "ok": False,
                "status": None,
                "error": reason,
                "elapsed": 0,
                "outbox_id": item.id,
            }
            await self._db.write(lambda s: _add_log(s, expiry))
            raise Expired(reason)
        if not endpoint.active:
            later = now + self._recheck
            # The rest of its queue waits too: none of it is due (or claimed) meanwhile.
            # (Turned on after this commits but before the relay records the deferral,
            # this one row, held by the relay, waits one ``recheck``: late, never lost.)
            if await self._db.write(lambda s: defer_waiting(s, subscription_id, now, later)):
                raise Deferred(_OFF, later)
            endpoint = await self._db.read(lambda s: _endpoint(s, subscription_id))
            if endpoint is None:
                return  # deleted meanwhile
            # Turned on meanwhile: this one goes now.
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
            "outbox_id": item.id,
        }
        disabled = await self._db.write(lambda s: self._log(s, attempt))
        if disabled:
            log.warning(
                "webhook subscription %s disabled: %d+ failures in a row over %s",
                subscription_id,
                self._disable_after,
                _span(self._failing_for),
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
                _STREAK.values(failure_count=0, failing_since=None, last_success_at=now).where(
                    WebhookSubscription.id == subscription_id
                ),
                execution_options={"synchronize_session": False},
            ).first()
        else:
            found = session.execute(
                _STREAK.values(
                    failure_count=WebhookSubscription.failure_count + 1,
                    failing_since=func.coalesce(
                        WebhookSubscription.failing_since,
                        literal(now, WebhookSubscription.failing_since.type),
                    ),
                    last_failure_at=now,
                ).where(WebhookSubscription.id == subscription_id),
                execution_options={"synchronize_session": False},
            ).first()
            if found is not None and self._outage(
                found.active, found.failure_count, found.failing_since, now
            ):
                disabled = self._disable(session, subscription_id, found.failure_count, attempt)
        if found is None:
            return False  # the subscription is gone: nothing to log against
        _add_log(session, attempt)
        return disabled

    def _outage(self, active: bool, failures: int, since: datetime | None, now: datetime) -> bool:
        """Failing long enough, and often enough, to be turned off."""
        if not active or failures < self._disable_after or since is None:
            return False
        return now - since >= self._failing_for

    def _disable(
        self, session: Session, subscription_id: int, failures: int, attempt: dict[str, Any]
    ) -> bool:
        """Turn the subscription off (its row is already locked by this transaction)."""
        now: datetime = attempt["now"]
        reason = (
            f"{failures} failed attempts in a row over {_span(self._failing_for)} or more; "
            f"last: {attempt['error'] or attempt['status']}; its deliveries wait"
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
    WebhookSubscription.failure_count, WebhookSubscription.active, WebhookSubscription.failing_since
)


def _add_log(session: Session, attempt: dict[str, Any]) -> None:
    session.add(
        WebhookDelivery(
            subscription_id=attempt["subscription_id"],
            webhook_id=attempt["webhook_id"],
            event=attempt["event"],
            attempt=attempt["attempt"],
            attempted_at=attempt["now"],
            ok=attempt["ok"],
            status_code=attempt["status"],
            error=attempt["error"],
            duration_ms=attempt["elapsed"],
            outbox_id=attempt.get("outbox_id"),
        )
    )


def _queued_at(payload: Mapping[str, Any]) -> datetime | None:
    """When the delivery was queued (rows written before this was recorded: None)."""
    raw = payload.get("queued_at")
    try:
        return datetime.fromisoformat(raw) if isinstance(raw, str) else None
    except ValueError:
        return None


def _span(period: timedelta) -> str:
    hours = period.total_seconds() / 3600
    return f"{hours / 24:g} days" if hours >= 48 else f"{hours:g} h"


def _endpoint(session: Session, subscription_id: int) -> _Endpoint | None:
    sub = session.get(WebhookSubscription, subscription_id)
    return None if sub is None else _Endpoint(sub.url, sub.secret, sub.active)
