"""Outbound webhooks under real concurrency on PostgreSQL (issue 13).

Two relays (two ``Database`` handles, as two processes would have) drain what 32
producers commit, into a local receiver that counts ``webhook-id``s. Some first
requests stall for longer than the claim lease, as a slow receiver would: the lease
must be renewed, not taken over by the other relay. Every event reaches every
subscriber exactly once, and PostgreSQL never reports a deadlock.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import SystemClock
from crm_core.db import Database
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage, WebhookDelivery, WebhookSubscription
from crm_core.outbox import OutboxItem, OutboxRelay, RelayPolicy
from crm_core.webhook_subscriptions import (
    WEBHOOK_TOPIC_PREFIX,
    WebhookDispatcher,
    WebhookFanOut,
    webhook_id_for,
)
from tests.conftest import PG_ADMIN_DSN
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]
EVENTS = 400  # committed transactions, each with a message.created and a conversation.created
PRODUCERS = 32
LEASE = timedelta(seconds=1)
STALL = 2.5  # seconds: longer than the lease


class CountingReceiver:
    """Counts every request by ``webhook-id``; the first request of some ids stalls."""

    def __init__(self, stall_one_in: int) -> None:
        self.stall_one_in = stall_one_in
        self.seen: Counter[str] = Counter()
        self.arrived = asyncio.Event()
        self.expected = 0

    async def handle(self, request: web.Request) -> web.Response:
        webhook_id = request.headers["webhook-id"]
        await request.read()
        self.seen[webhook_id] += 1
        first = self.seen[webhook_id] == 1
        if len(self.seen) >= self.expected:
            self.arrived.set()
        digest = int(hashlib.sha256(webhook_id.encode()).hexdigest()[:8], 16)
        if first and self.stall_one_in and digest % self.stall_one_in == 0:
            await asyncio.sleep(STALL)
        return web.Response(status=204)


@pytest.fixture(params=[0, 40], ids=["steady", "stalls"])
async def receiver(request: pytest.FixtureRequest) -> AsyncIterator[tuple[CountingReceiver, str]]:
    target = CountingReceiver(stall_one_in=int(request.param))
    app = web.Application()
    app.router.add_post("/hook/{name}", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield target, str(server.make_url("/hook"))
    finally:
        await server.close()


async def _deadlocks(pg_url: str) -> int:
    database = pg_url.rsplit("/", 1)[1]
    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        value = await connection.fetchval(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = $1", database
        )
        return int(value or 0)
    finally:
        await connection.close()


def _subscribe(url: str, events: list[str]) -> Any:
    def work(session: Session) -> int:
        now = SystemClock().now()
        sub = WebhookSubscription(
            url=url,
            events=events,
            secret=new_secret(),
            description="",
            active=True,
            failure_count=0,
            created_at=now,
            updated_at=now,
        )
        session.add(sub)
        session.flush()
        return sub.id

    return work


def _produce(n: int) -> Any:
    def work(session: Session) -> None:
        journal = Journal("test", SystemClock().now())
        journal.emit("message.created", n, {"message_id": n})
        journal.emit("conversation.created", n, {"conversation_id": n})
        journal.flush(session)

    return work


async def test_two_relays_deliver_every_event_exactly_once_without_deadlocks(
    pg_url: str,
    receiver: tuple[CountingReceiver, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    target, url = receiver
    clock = SystemClock()
    producer_db = Database(pg_url)
    relay_dbs = [Database(pg_url), Database(pg_url)]
    posters = [WebhookPoster(timeout=10, allow_private=True) for _ in relay_dbs]
    relays: list[OutboxRelay] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        messages = await producer_db.write(_subscribe(f"{url}/messages", ["message.*"]))
        everything = await producer_db.write(_subscribe(f"{url}/all", ["*"]))
        expected = {
            webhook_id_for(f"{sub}:{event}:{n}")
            for n in range(EVENTS)
            for sub, event in (
                (messages, "message.created"),
                (everything, "message.created"),
                (everything, "conversation.created"),
            )
        }
        target.expected = len(expected)

        async def downstream(item: OutboxItem) -> None:
            return None

        for db, poster in zip(relay_dbs, posters, strict=True):
            relay = OutboxRelay(
                db,
                clock,
                {},
                RelayPolicy(lease=LEASE, idle_poll=0.2, coalesce=0.01),
            )
            fan_out = WebhookFanOut(db, clock, downstream, on_commit=relay.wake)
            relay._handlers = {
                EVENTS_TOPIC: fan_out,
                WEBHOOK_TOPIC_PREFIX: WebhookDispatcher(db, clock, poster),
            }
            relays.append(relay)
            tasks.append(asyncio.create_task(relay.run_forever()))

        started = time.monotonic()
        numbers = iter(range(EVENTS))

        async def producer() -> None:
            for n in numbers:
                await producer_db.write(_produce(n))
                relays[n % 2].wake()

        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        with contextlib.suppress(TimeoutError):  # counted below
            await asyncio.wait_for(target.arrived.wait(), 90)
        elapsed = time.monotonic() - started
        # Let what is still in flight (a stalled or stale send) land before counting.
        for _ in range(int(STALL + 2 * LEASE.total_seconds()) * 5):
            if await _all_recorded(producer_db):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(STALL)
        print(
            f"\n{len(target.seen)} of {len(expected)} webhooks in {elapsed:.1f}s: "
            f"{len(target.seen) / elapsed:.1f} deliveries/s; "
            f"{sum(target.seen.values()) - len(target.seen)} sent twice or more"
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for poster in posters:
            await poster.close()
        for db in relay_dbs:
            await db.dispose()

    try:
        rows = await producer_db.read(_outcome)
    finally:
        await producer_db.dispose()
    await asyncio.sleep(0.5)  # a closed backend's statistics reach pg_stat_database
    deadlocks = await _deadlocks(pg_url)
    print(f"deadlocks reported by PostgreSQL: {deadlocks}")
    assert "deadlock detected" not in caplog.text
    assert deadlocks == 0
    assert set(target.seen) == expected
    assert [i for i, count in target.seen.items() if count != 1] == []
    deliveries, keys, statuses, ok_logged = rows
    assert deliveries == len(expected) == keys  # one row per (subscription, event key)
    assert statuses == {"delivered": len(expected) + EVENTS}
    assert ok_logged == len(expected)  # one successful attempt logged per webhook-id


async def _all_recorded(db: Database) -> bool:
    def work(session: Session) -> bool:
        pending = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status != "delivered")
        )
        return pending == 0

    return await db.read(work)


def _outcome(session: Session) -> tuple[int, int, dict[str, int], int]:
    deliver = OutboxMessage.topic == "webhook.deliver"
    deliveries = session.scalar(select(func.count()).select_from(OutboxMessage).where(deliver))
    keys = session.scalar(
        select(func.count(OutboxMessage.idempotency_key.distinct())).where(deliver)
    )
    by_status = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    statuses = {str(row[0]): int(row[1]) for row in session.execute(by_status)}
    ok_logged = session.scalar(
        select(func.count(WebhookDelivery.webhook_id.distinct())).where(
            WebhookDelivery.ok.is_(True)
        )
    )
    ok_rows = session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.ok.is_(True))
    )
    assert ok_rows == ok_logged, "a webhook-id was logged as delivered twice"
    return int(deliveries or 0), int(keys or 0), statuses, int(ok_logged or 0)
