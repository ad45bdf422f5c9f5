"""The outbox relay: delivers what the outbox holds, at least once, and records the outcome.

Rows are claimed with a lease (``locked_until``), so several relays (web processes,
or arq workers in scaled mode) can share one table; PostgreSQL claims with
``FOR UPDATE SKIP LOCKED``. A handler failure schedules a retry with exponential
backoff and jitter; after ``max_attempts`` the row is marked dead with its error.

The lease is renewed while its batch is being sent (every third of ``lease``), so a
slow receiver never lets another relay take over an item that is still in flight.
The lease's ``locked_until`` is also the claim's token: renewing it and recording an
outcome are conditional on the row still holding it, so a relay that lost its claim
(stalled past its lease, then taken over) neither sends what it has not started nor
marks what another relay now owns.

A row with an ``ordering_key`` is claimed only when no earlier row of the same key (by
``sequence``, then id) is still pending: the rows of one key go out one at a time, in
order, and a row waiting for its turn costs no attempt. A handler may also answer with
:class:`Deferred` (not tried now, due again later, no attempt counted), :class:`Expired`
(never tried again) or :class:`KeepTrying` (retried after the backoff whatever the
attempt count: the handler owns giving up).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.clock import Clock
from crm_core.db import Database
from crm_core.enums import OutboxStatus

log = logging.getLogger(__name__)

_DELIVERED = (
    update(tables.outbox)
    .where(
        tables.outbox.c.id.in_(bindparam("ids", expanding=True)),
        tables.outbox.c.locked_until == bindparam("lease"),
    )
    .values(
        attempts=tables.outbox.c.attempts + 1,
        status=OutboxStatus.DELIVERED.value,
        delivered_at=bindparam("now"),
        last_error=None,
        locked_until=None,
    )
)
_RECORD = (
    update(tables.outbox)
    .where(
        tables.outbox.c.id == bindparam("row_id"),
        tables.outbox.c.locked_until == bindparam("lease"),
    )
    .values(
        attempts=bindparam("attempts"),
        status=bindparam("status"),
        delivered_at=bindparam("delivered_at"),
        last_error=bindparam("last_error"),
        next_attempt_at=bindparam("next_attempt_at"),
        locked_until=None,
    )
)


def _record(session: Session, outcomes: list[dict[str, Any]], lease: datetime) -> None:
    """Deliveries in one statement; failures (rare) one row each; only rows still ours."""
    connection = session.connection()
    delivered = [o for o in outcomes if o["status"] == OutboxStatus.DELIVERED.value]
    if delivered:
        connection.execute(
            _DELIVERED,
            {
                "ids": sorted(o["row_id"] for o in delivered),
                "now": delivered[0]["delivered_at"],
                "lease": lease,
            },
        )
    failed = [o for o in outcomes if o["status"] != OutboxStatus.DELIVERED.value]
    if failed:
        rows = [{k: v for k, v in o.items() if k != "releases"} for o in failed]
        connection.execute(_RECORD, [{**o, "lease": lease} for o in rows])


def _renew(session: Session, ids: list[int], lease: datetime, until: datetime) -> set[int]:
    """Move the lease of the rows still held by ``lease`` to ``until``; the ids kept."""
    outbox = tables.outbox
    kept = session.connection().execute(
        update(outbox)
        .where(
            outbox.c.id.in_(ids),
            outbox.c.locked_until == lease,
            outbox.c.status == OutboxStatus.PENDING.value,
        )
        .values(locked_until=until)
        .returning(outbox.c.id)
    )
    return {row[0] for row in kept}


_WAITING = (OutboxStatus.PENDING.value,)


class Deferred(Exception):  # noqa: N818 - an outcome, raised by a handler
    """Not tried now: the row stays pending, due again at ``until``; no attempt is counted."""

    def __init__(self, reason: str, until: datetime) -> None:
        super().__init__(reason)
        self.until = until


class Expired(Exception):  # noqa: N818 - an outcome, raised by a handler
    """The row outlived its use: marked ``expired`` with the reason, never tried again."""


class KeepTrying(Exception):  # noqa: N818 - an outcome, raised by a handler
    """A failure retried after the backoff however many attempts were made."""


class _Lease:
    """One claimed batch: until when it is held, and which of its rows still are."""

    def __init__(self, until: datetime, ids: set[int]) -> None:
        self.until = until
        self.held = ids
        self.done = asyncio.Event()

    def holds(self, item_id: int, now: datetime) -> bool:
        return item_id in self.held and now < self.until


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """What a handler is given: the row's topic, its idempotency key and payload."""

    id: int
    topic: str
    idempotency_key: str
    payload: Mapping[str, Any]
    attempt: int
    ordering_key: str | None = None


class OutboxHandler(Protocol):
    async def __call__(self, item: OutboxItem) -> None:
        """Deliver ``item``; raise to have it retried."""


@dataclass(frozen=True, slots=True)
class RelayPolicy:
    batch_size: int = 200
    concurrency: int = 16
    lease: timedelta = timedelta(seconds=60)
    max_attempts: int = 12
    first_backoff: timedelta = timedelta(seconds=2)
    max_backoff: timedelta = timedelta(hours=1)
    idle_poll: float = 1.0
    coalesce: float = 0.05


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        handlers: Mapping[str, OutboxHandler],
        policy: RelayPolicy = RelayPolicy(),
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._db = db
        self._clock = clock
        self._handlers = dict(handlers)
        self._policy = policy
        self._jitter = jitter
        self._wakeup = asyncio.Event()
        # Also told of each wake-up: the relays of other processes (hub/relay_wake.py).
        self.tell_others: Callable[[], None] | None = None

    def wake(self) -> None:
        """Called after a commit that wrote outbox rows: deliver without waiting to poll."""
        self._wakeup.set()
        if self.tell_others is not None:
            self.tell_others()

    def wake_here(self) -> None:
        """Woken by another process: this relay only."""
        self._wakeup.set()

    def handler_for(self, topic: str) -> OutboxHandler | None:
        """The handler of the longest registered prefix of ``topic``."""
        best: str | None = None
        for prefix in self._handlers:
            if topic.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return self._handlers[best] if best is not None else None

    async def run_forever(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                delivered = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay pass failed; retrying")
                delivered = 0
            if delivered < self._policy.batch_size:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for drops the task's
                # own cancel when the event is set at that moment, and the relay never stops
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._policy.idle_poll):
                        await self._wakeup.wait()
                    # Let a burst of commits gather into one batch.
                    await asyncio.sleep(self._policy.coalesce)

    async def run_once(self) -> int:
        """Claim one batch of due rows, try each, record every outcome; returns the count."""
        until = self._clock.now() + self._policy.lease
        items = await self._db.write(lambda session: self._claim(session, until))
        if not items:
            return 0
        lease = _Lease(until, {item.id for item in items})
        renewing = asyncio.create_task(self._renew_while_sending(lease))
        # A few lanes take the items in id order: no task per item, and handlers that
        # never wait (the in-process event bus) see the events in the order they happened.
        queue = iter(items)
        outcomes: list[dict[str, Any]] = []

        async def lane() -> None:
            for item in queue:
                if not lease.holds(item.id, self._clock.now()):
                    # The claim ran out: another relay may have this row; leave it to them.
                    log.warning("outbox %s (%s): lease lost, not sent", item.id, item.topic)
                    continue
                outcomes.append(self._outcome(item, await self._deliver(item)))

        try:
            lanes = min(self._policy.concurrency, len(items))
            await asyncio.gather(*(lane() for _ in range(lanes)))
        finally:
            # Stop renewing before recording (never two writers on these rows at once);
            # a renewal under way is let finish, so that ``lease.until`` is what was stored.
            lease.done.set()
            await asyncio.wait([renewing])
        held = [o for o in outcomes if o["row_id"] in lease.held]
        await self._db.write(lambda session: _record(session, held, lease.until))
        if any(o["releases"] for o in held):
            self._wakeup.set()  # the next row of an ordering key is due now: no idle wait
        return len(items)

    async def _renew_while_sending(self, lease: _Lease) -> None:
        interval = self._policy.lease.total_seconds() / 3
        while not lease.done.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):  # not wait_for: see run_forever
                    await lease.done.wait()
                return
            ids = sorted(lease.held)
            until = self._clock.now() + self._policy.lease
            try:
                renew = functools.partial(_renew, ids=ids, lease=lease.until, until=until)
                kept = await self._db.write(renew)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox lease renewal failed; retrying")
                continue
            lost = lease.held - kept
            if lost:
                log.warning("outbox lease lost on %d rows: %s", len(lost), sorted(lost)[:20])
            lease.held, lease.until = kept, until

    def _claim(self, session: Session, until: datetime | None = None) -> list[OutboxItem]:
        """Lease up to a batch of due rows in one statement (SKIP LOCKED on PostgreSQL)."""
        now = self._clock.now()
        if until is None:
            until = now + self._policy.lease
        outbox = tables.outbox
        earlier = outbox.alias("earlier")
        waits_for_earlier = exists().where(
            earlier.c.ordering_key == outbox.c.ordering_key,
            earlier.c.status.in_(_WAITING),
            or_(
                earlier.c.sequence < outbox.c.sequence,
                and_(earlier.c.sequence == outbox.c.sequence, earlier.c.id < outbox.c.id),
            ),
        )
        due = (
            select(outbox.c.id)
            .where(
                outbox.c.status == OutboxStatus.PENDING.value,
                outbox.c.next_attempt_at <= now,
                or_(outbox.c.locked_until.is_(None), outbox.c.locked_until <= now),
                or_(outbox.c.ordering_key.is_(None), ~waits_for_earlier),
            )
            .order_by(outbox.c.next_attempt_at, outbox.c.id)
            .limit(self._policy.batch_size)
        )
        if not self._db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        claimed = session.connection().execute(
            update(outbox)
            .where(outbox.c.id.in_(due.scalar_subquery()))
            .values(locked_until=until)
            .returning(
                outbox.c.id,
                outbox.c.topic,
                outbox.c.idempotency_key,
                outbox.c.payload,
                outbox.c.attempts,
                outbox.c.ordering_key,
            )
        )
        items = [OutboxItem(r[0], r[1], r[2], r[3], r[4] + 1, r[5]) for r in claimed]
        return sorted(items, key=lambda item: item.id)

    async def _deliver(self, item: OutboxItem) -> str | Exception | None:
        """None when delivered, else the error (an outcome a handler raised, as raised)."""
        handler = self.handler_for(item.topic)
        if handler is None:
            return f"no handler for topic {item.topic!r}"
        try:
            await handler(item)
        except asyncio.CancelledError:
            raise
        except (Deferred, Expired) as exc:
            return exc
        except Exception as exc:
            if isinstance(exc, KeepTrying):
                return exc
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning(
                "outbox %s (%s) attempt %d failed: %s", item.id, item.topic, item.attempt, error
            )
            return error
        return None

    def _outcome(self, item: OutboxItem, result: str | Exception | None) -> dict[str, Any]:
        now = self._clock.now()
        error = None if result is None else str(result)[:2000]
        row: dict[str, Any] = {
            "row_id": item.id,
            "attempts": item.attempt,
            "status": OutboxStatus.PENDING.value,
            "delivered_at": None,
            "last_error": error,
            "next_attempt_at": now,
        }
        if result is None:
            row.update(status=OutboxStatus.DELIVERED.value, delivered_at=now)
        elif isinstance(result, Deferred):
            row.update(attempts=item.attempt - 1, next_attempt_at=result.until)
        elif isinstance(result, Expired):
            row["status"] = OutboxStatus.EXPIRED.value
            log.warning("outbox %s (%s) expired: %s", item.id, item.topic, error)
        elif isinstance(result, KeepTrying):
            log.warning(
                "outbox %s (%s) attempt %d failed: %s", item.id, item.topic, item.attempt, error
            )
            row["next_attempt_at"] = now + self.backoff(item.attempt)
        elif item.attempt >= self._policy.max_attempts:
            row["status"] = OutboxStatus.DEAD.value
            log.error(
                "outbox %s (%s) gave up after %d attempts: %s",
                item.id,
                item.topic,
                item.attempt,
                error,
            )
        else:
            row["next_attempt_at"] = now + self.backoff(item.attempt)
        # A row done for good lets the next one of its ordering key go.
        row["releases"] = item.ordering_key is not None and row["status"] != _WAITING[0]
        return row

    def backoff(self, attempt: int) -> timedelta:
        """Exponential from ``first_backoff``, capped, with up to +50% jitter."""
        base = self._policy.first_backoff * (2 ** min(attempt - 1, 32))  # no overflow
        capped: timedelta = min(base, self._policy.max_backoff)
        return capped * (1 + 0.5 * self._jitter())
