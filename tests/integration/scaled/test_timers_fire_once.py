"""Two ``omnihub worker`` processes on one PostgreSQL both run the timer runner: a batch of
first-response SLA timers falling due at once is fired once each, across both workers (one
``conversation.sla_breached`` event, one task for the head of sales and one delivery to a
counting webhook receiver per conversation)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.models import Conversation, Task, Timer
from crm_core.timers import SLA
from crm_core.webhook_subscriptions import create_subscription
from tests.factories import emitted
from tests.integration.scaled.cluster import Cluster, bounded, inbound, post_inbound, seed_people
from tests.integration.test_cli import _free_port

CONVERSATIONS = 40
EVENT = "conversation.sla_breached"

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


@dataclass
class Receiver:
    """An outbound webhook receiver that keeps every body and ``webhook-id`` it is sent."""

    port: int = field(default_factory=_free_port)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        self.bodies.append(dict(await request.json()))
        self.ids.append(request.headers.get("webhook-id", ""))
        return web.json_response({"ok": True})

    def breached(self) -> Counter[int]:
        """Deliveries of the event by conversation id."""
        return Counter(
            int(body["data"]["conversation_id"]) for body in self.bodies if body["type"] == EVENT
        )


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    counting = Receiver()
    app = web.Application()
    app.router.add_post("/hook", counting.handle)
    app.router.add_post("/second", counting.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", counting.port).start()
    yield counting
    await runner.cleanup()


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what}")
        await asyncio.sleep(0.05)


async def _subscribe(
    db: Database, url: str, events: tuple[str, ...] | list[str] = (EVENT,)
) -> None:
    def work(session: Session) -> None:
        journal = Journal("test", datetime.now(UTC))
        create_subscription(session, journal, url=url, events=events, secret="whsec-test")

    await db.write(work)


async def _due_now(db: Database, conversations: list[int]) -> None:
    """One SLA timer per conversation, all due a second ago, in one commit."""
    now = datetime.now(UTC)

    def work(session: Session) -> None:
        for conversation in conversations:
            session.add(
                Timer(
                    kind=SLA,
                    conversation_id=conversation,
                    manager_id=None,
                    team=None,
                    minutes=0,
                    due_at=now - timedelta(seconds=1),
                    fired_at=None,
                    outcome=None,
                    created_at=now - timedelta(seconds=1),
                )
            )

    await db.write(work)


async def test_due_timers_fire_once_across_two_workers(
    cluster: Cluster, pg_url: str, receiver: Receiver
) -> None:
    cluster.env["OMNIHUB_TIMER_POLL_SECONDS"] = "0.1"
    cluster.env["OMNIHUB_CHANNELS"] = json.dumps({"webhooks": {"allow_private_targets": True}})
    db = Database(pg_url)
    try:
        token = await seed_people(db)
        # Stored before the processes start: a worker caches the subscriptions for a second,
        # and an event it relays within that second after a subscription made elsewhere
        # would not reach it (a separate matter; not what this test is about).
        await _subscribe(db, f"http://127.0.0.1:{receiver.port}/hook")
        hubs = [cluster.start("web"), cluster.start("worker"), cluster.start("worker")]
        await cluster.ready(*hubs)
        web_hub = hubs[0]
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            answers = await bounded(
                [
                    lambda n=n: post_inbound(  # type: ignore[misc]
                        client,
                        web_hub.base,
                        token,
                        inbound(f"sla-{n}", f"+7916{n:07d}", text=f"Вопрос {n}"),
                    )
                    for n in range(CONVERSATIONS)
                ],
                concurrency=8,
            )
        assert all(a.status in (200, 201) and a.data for a in answers), answers
        conversations = sorted({int(a.data["conversation_id"]) for a in answers if a.data})
        assert len(conversations) == CONVERSATIONS
        # any timers routing scheduled itself are not due for minutes: the batch below is
        # what both workers' runners find due together
        before = len(await emitted(db, EVENT))
        assert before == 0
        await _due_now(db, conversations)

        async def all_delivered() -> bool:
            return len(receiver.breached()) == CONVERSATIONS and await _unfired_due(db) == 0

        try:
            await _eventually(all_delivered, 30, "every breach is delivered")
        except AssertionError as exc:
            state = (
                f"delivered {len(receiver.breached())}, unfired {await _unfired_due(db)}, "
                f"events {len(await emitted(db, EVENT))}, received {len(receiver.bodies)}"
            )
            raise AssertionError(f"{exc}: {state}") from exc
        await asyncio.sleep(1.0)  # a second firing or delivery, if any, would land now

        assert receiver.breached() == Counter(dict.fromkeys(conversations, 1)), receiver.bodies
        assert len(set(receiver.ids)) == len(receiver.ids) == CONVERSATIONS
        events = await emitted(db, EVENT)
        assert sorted(int(e["conversation_id"]) for e in events) == conversations, events

        def facts(session: Session) -> tuple[int, int, int]:
            tasks = session.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.title.startswith("First response overdue"))
            )
            breached = session.scalar(
                select(func.count())
                .select_from(Conversation)
                .where(Conversation.sla_breached_at.is_not(None))
            )
            fired = session.scalar(
                select(func.count())
                .select_from(Timer)
                .where(Timer.kind == SLA, Timer.outcome.startswith("breached"))
            )
            return int(tasks or 0), int(breached or 0), int(fired or 0)

        assert await db.read(facts) == (CONVERSATIONS, CONVERSATIONS, CONVERSATIONS)
        assert all(h.process.poll() is None for h in hubs)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from exc
    finally:
        await db.dispose()


async def _unfired_due(db: Database) -> int:
    """Timers due by now and not fired."""
    now = datetime.now(UTC)

    def work(session: Session) -> int:
        count = session.scalar(
            select(func.count())
            .select_from(Timer)
            .where(Timer.fired_at.is_(None), Timer.due_at <= now)
        )
        return int(count or 0)

    return await db.read(work)


async def test_an_event_after_a_subscription_made_through_a_web_reaches_it(
    cluster: Cluster, pg_url: str, receiver: Receiver
) -> None:
    cluster.env["OMNIHUB_CHANNELS"] = json.dumps({"webhooks": {"allow_private_targets": True}})
    db = Database(pg_url)
    try:
        token = await seed_people(db)
        first = f"http://127.0.0.1:{receiver.port}/hook"
        await _subscribe(db, first, events=["conversation.created"])
        web_hub, worker = cluster.start("web"), cluster.start("worker")
        await cluster.ready(web_hub, worker)
        headers = {"Authorization": f"Bearer {token}"}

        def created(path: str) -> set[int]:
            return {
                int(body["data"]["conversation_id"])
                for p, body in zip(receiver.paths, receiver.bodies, strict=True)
                if p == path and body["type"] == "conversation.created"
            }

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as client:
            one = await post_inbound(client, web_hub.base, token, inbound("s-1", "+79160000001"))
            assert one.data is not None, one
            first_id = int(one.data["conversation_id"])
            await _eventually(
                lambda: asyncio.sleep(0, first_id in created("/hook")),
                10,
                "the first event is delivered",
            )
            # the worker has just read the subscriptions; a second one is made now
            async with client.post(
                web_hub.base + "/api/v1/webhooks/subscriptions",
                json={
                    "url": f"http://127.0.0.1:{receiver.port}/second",
                    "events": ["conversation.created"],
                },
                headers=headers,
            ) as response:
                assert response.status in (200, 201), await response.text()
            two = await post_inbound(client, web_hub.base, token, inbound("s-2", "+79160000002"))
            assert two.data is not None, two
            second = int(two.data["conversation_id"])
        await _eventually(
            lambda: asyncio.sleep(0, second in created("/hook")), 10, "the old one has it"
        )
        await _eventually(
            lambda: asyncio.sleep(0, second in created("/second")), 3, "the new one has it"
        )
    finally:
        await db.dispose()
