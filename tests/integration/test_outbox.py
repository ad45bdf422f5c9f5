"""The outbox relay: at least once, backoff, a dead letter after the last attempt."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import OutboxStatus
from crm_core.events import EventBus
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage
from crm_core.outbox import OutboxItem, OutboxRelay, RelayPolicy


async def _enqueue(db: Database, clock: ManualClock, *topics: str) -> None:
    def work(session: Session) -> None:
        journal = Journal("test", clock.now())
        for n, topic in enumerate(topics):
            journal.enqueue(topic, f"{topic}:{n}", {"n": n})
        journal.flush(session)

    await db.write(work)


async def _rows(db: Database) -> list[OutboxMessage]:
    return await db.read(
        lambda s: list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    )


async def test_delivers_each_row_once_and_records_it(db: Database, clock: ManualClock) -> None:
    bus = EventBus()
    inbox = bus.subscribe()
    relay = OutboxRelay(db, clock, {EVENTS_TOPIC: bus})

    def two_events(session: Session) -> None:
        journal = Journal("test", clock.now())
        journal.emit("deal.created", 7, {"n": 0})
        journal.emit("task.created", 9, {"n": 1})
        journal.flush(session)

    await db.write(two_events)
    assert await relay.run_once() == 1  # a transaction's events travel in one row
    assert await relay.run_once() == 0
    first, second = inbox.get_nowait(), inbox.get_nowait()
    assert [(first["event"], first["n"]), (second["event"], second["n"])] == [
        ("deal.created", 0),
        ("task.created", 1),
    ]
    assert inbox.empty()
    rows = await _rows(db)
    assert [(r.topic, r.status, r.attempts) for r in rows] == [(EVENTS_TOPIC, "delivered", 1)]
    assert rows[0].idempotency_key.startswith("events:deal.created:7:")  # and the transaction's
    assert all(r.delivered_at == clock.now() for r in rows)


async def test_failures_back_off_then_succeed(db: Database, clock: ManualClock) -> None:
    calls: list[int] = []

    async def flaky(item: OutboxItem) -> None:
        calls.append(item.attempt)
        if item.attempt < 3:
            raise ConnectionError("receiver is down")

    relay = OutboxRelay(
        db, clock, {"webhook.": flaky}, RelayPolicy(max_attempts=5), jitter=lambda: 0.0
    )
    await _enqueue(db, clock, "webhook.deal.created")
    assert await relay.run_once() == 1
    row = (await _rows(db))[0]
    assert row.status == OutboxStatus.PENDING
    assert row.last_error == "ConnectionError: receiver is down"
    assert row.next_attempt_at == clock.now() + timedelta(seconds=2)
    assert await relay.run_once() == 0  # not due yet
    clock.advance(timedelta(seconds=2))
    assert await relay.run_once() == 1
    assert (await _rows(db))[0].next_attempt_at == clock.now() + timedelta(seconds=4)
    clock.advance(timedelta(seconds=4))
    assert await relay.run_once() == 1
    assert calls == [1, 2, 3]
    row = (await _rows(db))[0]
    assert (row.status, row.attempts, row.last_error) == ("delivered", 3, None)


async def test_gives_up_after_the_last_attempt(db: Database, clock: ManualClock) -> None:
    async def broken(item: OutboxItem) -> None:
        raise RuntimeError("HTTP 500")

    relay = OutboxRelay(
        db, clock, {"webhook.": broken}, RelayPolicy(max_attempts=2), jitter=lambda: 0.0
    )
    await _enqueue(db, clock, "webhook.x", "nobody.handles.this")
    await relay.run_once()
    clock.advance(timedelta(hours=1))
    await relay.run_once()
    rows = await _rows(db)
    assert [(r.topic, r.status, r.attempts) for r in rows] == [
        ("webhook.x", "dead", 2),
        ("nobody.handles.this", "dead", 2),
    ]
    assert rows[1].last_error == "no handler for topic 'nobody.handles.this'"


async def test_a_claimed_row_is_not_claimed_again_until_its_lease_ends(
    db: Database, clock: ManualClock
) -> None:
    relay = OutboxRelay(db, clock, {})
    await _enqueue(db, clock, "webhook.a")
    claimed = await db.write(relay._claim)
    assert len(claimed) == 1
    assert await db.write(relay._claim) == []
    clock.advance(timedelta(minutes=2))
    assert len(await db.write(relay._claim)) == 1


@pytest.mark.parametrize("attempt", [1, 5, 30])
def test_backoff_grows_and_is_capped(attempt: int) -> None:
    relay = OutboxRelay.__new__(OutboxRelay)
    relay._policy = RelayPolicy()
    relay._jitter = lambda: 1.0
    delay = relay.backoff(attempt)
    assert timedelta(seconds=2) <= delay <= timedelta(hours=1.5)
    if attempt > 1:
        relay._jitter = lambda: 0.0
        assert relay.backoff(attempt) > relay.backoff(attempt - 1) or delay >= timedelta(hours=1)


async def test_json_columns_keep_what_a_fast_encoder_refuses(
    db: Database, clock: ManualClock
) -> None:
    # A form's custom field may carry an integer past 64 bits, and a count may be keyed
    # by an id: both are stored, and read back exactly.
    payload: dict[Any, Any] = {"huge": 10**30, 7: "keyed by an int", "text": "Привет"}

    def work(session: Session) -> None:
        journal = Journal("test", clock.now())
        journal.enqueue("webhook.x", "x:1", payload)
        journal.flush(session)

    await db.write(work)
    (row,) = await _rows(db)
    assert row.payload == {"huge": 10**30, "7": "keyed by an int", "text": "Привет"}


async def test_a_relay_that_lost_its_lease_neither_sends_nor_records(
    db: Database, clock: ManualClock
) -> None:
    # Relay A stalls on its first row past the lease; relay B takes both rows over.
    release, stalling = asyncio.Event(), asyncio.Event()
    sent: list[tuple[str, int]] = []

    async def stalled(item: OutboxItem) -> None:
        sent.append(("a", item.id))
        stalling.set()
        await release.wait()
        raise ConnectionError("too late")

    async def quick(item: OutboxItem) -> None:
        sent.append(("b", item.id))

    slow = OutboxRelay(db, clock, {"webhook.": stalled}, RelayPolicy(concurrency=1))
    fast = OutboxRelay(db, clock, {"webhook.": quick})
    await _enqueue(db, clock, "webhook.a", "webhook.b")
    first, second = (row.id for row in await _rows(db))
    stuck = asyncio.create_task(slow.run_once())
    await stalling.wait()
    clock.advance(timedelta(minutes=2))
    assert await fast.run_once() == 2
    release.set()
    assert await stuck == 2
    assert sent == [("a", first), ("b", first), ("b", second)]  # A did not send the second
    rows = await _rows(db)
    assert [(r.status, r.attempts, r.last_error) for r in rows] == [("delivered", 1, None)] * 2


async def test_the_lease_is_renewed_while_its_row_is_being_sent(
    db: Database, clock: ManualClock
) -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(item: OutboxItem) -> None:
        started.set()
        await release.wait()

    lease = timedelta(seconds=0.3)  # renewed every 0.1 s of real time
    relay = OutboxRelay(db, clock, {"webhook.": slow}, RelayPolicy(lease=lease))
    other = OutboxRelay(db, clock, {})
    await _enqueue(db, clock, "webhook.a")
    sending = asyncio.create_task(relay.run_once())
    await started.wait()
    for _ in range(5):  # the clock passes the first lease several times over
        clock.advance(timedelta(seconds=0.2))
        await asyncio.sleep(0.15)
        assert await db.write(other._claim) == []
    release.set()
    assert await sending == 1
    assert [(r.status, r.attempts) for r in await _rows(db)] == [("delivered", 1)]
