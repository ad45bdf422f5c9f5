"""An admin turning a subscription off and on, and deleting another, while two relays
deliver under real concurrency on PostgreSQL (issue 15): the new writes (deferring a
queue, releasing it, dropping one) take the subscription's row first and skip rows a
relay holds, so PostgreSQL reports no deadlock; every event arrives exactly once, each
contact's in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import SystemClock
from crm_core.db import Database
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage
from crm_core.outbox import OutboxItem, OutboxRelay, RelayPolicy
from crm_core.webhook_queue import delete_subscription
from crm_core.webhook_subscriptions import (
    WEBHOOK_TOPIC_PREFIX,
    WebhookDispatcher,
    WebhookFanOut,
    create_subscription,
    update_subscription,
    webhook_id_for,
)
from tests.integration.webhooks.receivers import until
from tests.integration.webhooks.test_outbound_concurrency import _deadlocks
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(150)]
CONTACTS = 150
PRODUCERS = 16


class Receiver:
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()
        self.order: dict[int, list[str]] = {}

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.seen[request.headers["webhook-id"]] += 1
        if request.match_info["name"] == "all":
            self.order.setdefault(int(body["data"]["contact_id"]), []).append(body["type"])
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{name}", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield target, str(server.make_url("/hook"))
    finally:
        await server.close()


def _subscribe(url: str, events: list[str]) -> Any:
    def work(session: Session) -> int:
        journal = Journal("test", SystemClock().now())
        return create_subscription(session, journal, url=url, events=events, secret=new_secret()).id

    return work


def _lead(n: int) -> Any:
    def work(session: Session) -> None:
        journal = Journal("test", SystemClock().now())
        journal.emit("contact.created", n, {"contact_id": n})
        journal.emit("deal.created", n, {"deal_id": n, "contact_id": n})
        journal.flush(session)

    return work


def _toggle(sub_id: int, active: bool) -> Any:
    def work(session: Session) -> None:
        update_subscription(session, Journal("admin", SystemClock().now()), sub_id, active=active)

    return work


def _deferred(session: Session) -> int:
    waiting = OutboxMessage.last_error.startswith("waiting")
    return int(session.scalar(select(func.count()).where(waiting)) or 0)


async def test_turning_a_subscription_off_and_on_under_load_loses_nothing_without_deadlocks(
    pg_url: str, receiver: tuple[Receiver, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    target, url = receiver
    clock = SystemClock()
    producer_db, admin_db = Database(pg_url), Database(pg_url)
    relay_dbs = [Database(pg_url), Database(pg_url)]
    posters = [WebhookPoster(timeout=10, allow_private=True) for _ in relay_dbs]
    tasks: list[asyncio.Task[None]] = []
    try:
        everything = await producer_db.write(_subscribe(f"{url}/all", ["*"]))
        doomed = await producer_db.write(_subscribe(f"{url}/doomed", ["deal.*"]))
        expected = {
            webhook_id_for(f"{everything}:{event}:{n}")
            for n in range(CONTACTS)
            for event in ("contact.created", "deal.created")
        }

        async def downstream(item: OutboxItem) -> None:
            return None

        relays = []
        for db, poster in zip(relay_dbs, posters, strict=True):
            relay = OutboxRelay(db, clock, {}, RelayPolicy(lease=timedelta(seconds=2)))
            relay._handlers = {
                EVENTS_TOPIC: WebhookFanOut(db, clock, downstream, on_commit=relay.wake),
                WEBHOOK_TOPIC_PREFIX: WebhookDispatcher(
                    db, clock, poster, recheck=timedelta(seconds=1)
                ),
            }
            relays.append(relay)
            tasks.append(asyncio.create_task(relay.run_forever()))
        numbers = iter(range(CONTACTS))
        deferrals: list[int] = []  # the rounds in which deliveries were seen waiting

        async def producer() -> None:
            for n in numbers:
                await producer_db.write(_lead(n))
                relays[n % 2].wake()

        async def admin() -> None:
            for round_ in range(4):
                goal = 40 * round_
                await until(lambda: sum(target.seen.values()) >= goal, 30)  # noqa: B023
                await admin_db.write(_toggle(everything, False))
                with contextlib.suppress(AssertionError):  # the load may be over already
                    await until(lambda: admin_db.read(_deferred), 2)
                    deferrals.append(round_)
                await admin_db.write(_toggle(everything, True))
                for relay in relays:
                    relay.wake()
                if round_ == 1:
                    await admin_db.write(
                        lambda s: delete_subscription(s, Journal("admin", clock.now()), doomed)
                    )

        await asyncio.gather(admin(), *(producer() for _ in range(PRODUCERS)))
        await until(lambda: expected <= set(target.seen), 60)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for poster in posters:
            await poster.close()
        for db in [*relay_dbs, admin_db, producer_db]:
            await db.dispose()
    await asyncio.sleep(0.5)  # a closed backend's statistics reach pg_stat_database
    deadlocks = await _deadlocks(pg_url)
    print(
        f"\n{len(expected)} webhooks of the toggled subscription; waited in rounds "
        f"{deferrals}; deadlocks: {deadlocks}"
    )
    assert "deadlock detected" not in caplog.text
    assert deadlocks == 0
    assert [i for i in expected if target.seen[i] != 1] == []
    assert len(target.order) == CONTACTS
    assert all(events == ["contact.created", "deal.created"] for events in target.order.values())
