"""Outbound webhooks through the admin API (issue 15): a subscription that is off keeps
its deliveries and sends them, in order, when it is on again; retry, replay, delete and
ping; a delivery that waits past the retention is marked expired, in the log too."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.events import EventBus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage, WebhookDelivery
from crm_core.outbox import OutboxRelay
from crm_core.webhook_subscriptions import (
    DELIVER_TOPIC,
    WEBHOOK_TOPIC_PREFIX,
    WebhookDispatcher,
    WebhookFanOut,
    create_subscription,
    update_subscription,
)
from hub.app import create_app
from hub.keys import INGEST
from hub.settings import Settings
from tests.factories import add_managers, api_token, inbound, phone
from tests.integration.webhooks.receivers import Endpoint, in_order_per_contact, signed_by, until
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
PATH = "/api/v1/webhooks/subscriptions"
LEADS = 4


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    target = Endpoint()
    await target.up()
    try:
        yield target
    finally:
        await target.down()


class Hub:
    """A hub (its relay running) that may post to 127.0.0.1, and an admin's token."""

    def __init__(
        self,
        app: web.Application,
        client: TestClient[Any, Any],
        db: Database,
        clock: ManualClock,
        token: str,
    ) -> None:
        self.app = app
        self.clock = clock
        self.client = client
        self.db = db
        self.auth = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        response = await self.client.request(method, path, headers=self.auth, **kwargs)
        body = await response.json() if response.status != 204 else None
        return response.status, body

    async def leads(self, first: int, count: int = LEADS) -> None:
        ingest = self.app[INGEST]
        for n in range(first, first + count):
            await ingest.ingest(inbound(phone(f"+7916555{n:04d}"), account="site"))

    async def deliveries(self, *statuses: str) -> int:
        def work(session: Session) -> int:
            query = select(func.count()).where(OutboxMessage.topic == DELIVER_TOPIC)
            if statuses:
                query = query.where(OutboxMessage.status.in_(statuses))
            return int(session.scalar(query) or 0)

        return await self.db.read(work)


@pytest.fixture
async def hub(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> Hub:
    token = await api_token(db)
    await add_managers(db, 2)
    settings = Settings(
        database_url=database_url,
        channels={"webhooks": {"allow_private_targets": True, "delivery_timeout_seconds": 3}},
    )
    app = create_app(settings, clock=clock)
    client = await aiohttp_client(app)
    return Hub(app, client, db, clock, token)


async def _subscribe(hub: Hub, url: str) -> dict[str, Any]:
    status, sub = await hub.call(
        "POST", PATH, json={"url": url, "events": ["contact.created", "deal.created"]}
    )
    assert status == 201, sub
    return dict(sub)


async def test_a_subscription_turned_off_keeps_its_deliveries_and_sends_them_when_on(
    hub: Hub, endpoint: Endpoint
) -> None:
    sub = await _subscribe(hub, endpoint.url)
    status, off = await hub.call("PATCH", f"{PATH}/{sub['id']}", json={"active": False})
    assert (status, off["active"]) == (200, False)
    await hub.leads(0)

    async def all_waiting() -> bool:
        # The subscription's whole queue waits (none of it due), not only what was tried.
        return await _deferred(hub) == 2 * LEADS

    await until(all_waiting)
    assert endpoint.arrived == []
    status, seen = await hub.call("GET", f"{PATH}/{sub['id']}")
    assert (status, seen["waiting_deliveries"]) == (200, 2 * LEADS)

    status, on = await hub.call("PATCH", f"{PATH}/{sub['id']}", json={"active": True})
    assert (status, on["active"]) == (200, True)
    await until(lambda: len(endpoint.arrived) == 2 * LEADS)
    assert set(endpoint.ids().values()) == {1}
    assert in_order_per_contact(endpoint.arrived)
    assert all(signed_by(sub["secret"], headers, body) for headers, body in endpoint.raw)
    await until(lambda: _waiting(hub, sub["id"], 0))


async def _deferred(hub: Hub) -> int:
    """Deliveries pending, not due yet, and saying why."""

    def work(session: Session) -> int:
        rows = session.execute(
            select(OutboxMessage.last_error, OutboxMessage.next_attempt_at).where(
                OutboxMessage.topic == DELIVER_TOPIC, OutboxMessage.status == "pending"
            )
        ).all()
        now = hub.clock.now()
        waiting = "waiting: the subscription is off"
        return sum((error or "").startswith(waiting) and due > now for error, due in rows)

    return await hub.db.read(work)


async def _waiting(hub: Hub, sub_id: int, expected: int) -> bool:
    status, seen = await hub.call("GET", f"{PATH}/{sub_id}")
    return bool(status == 200 and seen["waiting_deliveries"] == expected)


async def test_retry_replay_ping_and_delete_through_the_api(
    hub: Hub, endpoint: Endpoint, clock: ManualClock
) -> None:
    started = clock.now()
    sub = await _subscribe(hub, endpoint.url)
    sub_path = f"{PATH}/{sub['id']}"
    await hub.leads(10)
    await until(lambda: len(endpoint.arrived) == 2 * LEADS)
    first = list(endpoint.arrived)

    # Ping: signed and posted like any webhook; the answer is the receiver's.
    status, pong = await hub.call("POST", f"{sub_path}/ping")
    assert status == 200
    assert (pong["ok"], pong["status_code"], pong["error"]) == (True, 204, None)
    assert endpoint.arrived[-1][:2] == (pong["webhook_id"], "ping")
    assert endpoint.arrived[-1][2] == {"subscription_id": sub["id"]}
    assert signed_by(sub["secret"], *endpoint.raw[-1])
    endpoint.status = 503
    status, refused = await hub.call("POST", f"{sub_path}/ping")
    assert (status, refused["ok"], refused["status_code"]) == (200, False, 503)
    endpoint.status = 204
    assert (await hub.call("POST", f"{PATH}/999999/ping"))[0] == 404

    # Retry one logged delivery: the same event, same webhook-id, once more.
    status, log = await hub.call("GET", f"{sub_path}/deliveries")
    assert status == 200
    by_event = {item["event"]: item for item in log["items"]}
    deal = by_event["deal.created"]
    status, queued = await hub.call("POST", f"{sub_path}/deliveries/{deal['id']}/retry")
    assert (status, queued["queued"], queued["webhook_id"]) == (202, 1, deal["webhook_id"])
    await until(lambda: endpoint.ids()[deal["webhook_id"]] == 2)
    ping_log = by_event["ping"]
    status, error = await hub.call("POST", f"{sub_path}/deliveries/{ping_log['id']}/retry")
    assert (status, error["error"]) == (409, "conflict")
    assert (await hub.call("POST", f"{sub_path}/deliveries/999999/retry"))[0] == 404
    assert (await hub.call("POST", f"{sub_path}/deliveries/0/retry"))[0] == 400

    # Replay the period: every event of it again, same ids, each contact in order.
    before = len(endpoint.arrived)
    since = started.isoformat()
    bad = await hub.call("POST", f"{sub_path}/replay", json={"since": since, "until": since})
    assert bad[0] == 400
    assert bad[1]["errors"][0]["field"] == "until"
    assert (await hub.call("POST", f"{sub_path}/replay", json={"since": 5}))[0] == 400
    status, replayed = await hub.call("POST", f"{sub_path}/replay", json={"since": since})
    assert status == 202, replayed
    assert (status, replayed["queued"], replayed["next_since"]) == (202, 2 * LEADS, None)
    await until(lambda: len(endpoint.arrived) == before + 2 * LEADS)
    again = endpoint.arrived[before:]
    assert in_order_per_contact(again)
    assert {a[0] for a in again} == {a[0] for a in first}
    later = (clock.now() + timedelta(hours=1)).isoformat()
    status, none = await hub.call("POST", f"{sub_path}/replay", json={"since": later})
    assert (status, none["queued"]) == (202, 0)

    # Delete: what waits is dropped with it.
    await hub.call("PATCH", sub_path, json={"active": False})
    await hub.leads(20, 1)
    await until(lambda: _waiting(hub, sub["id"], 2))
    assert (await hub.call("DELETE", sub_path))[0] == 204
    assert await hub.deliveries("pending") == 0
    assert (await hub.call("GET", sub_path))[0] == 404
    assert (await hub.call("DELETE", sub_path))[0] == 404
    assert (await hub.call("POST", f"{sub_path}/replay", json={"since": since}))[0] == 404


async def test_a_delivery_that_waits_past_the_retention_expires_visibly(
    db: Database, clock: ManualClock, endpoint: Endpoint
) -> None:
    await add_managers(db, 1)

    def subscribe(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = create_subscription(
            session, journal, url=endpoint.url, events=["contact.created"], secret=new_secret()
        )
        update_subscription(session, journal, sub.id, active=False)
        return sub.id

    sub_id = await db.write(subscribe)
    poster = WebhookPoster(timeout=3, allow_private=True)
    relay = OutboxRelay(
        db,
        clock,
        {
            EVENTS_TOPIC: WebhookFanOut(db, clock, EventBus()),
            WEBHOOK_TOPIC_PREFIX: WebhookDispatcher(db, clock, poster),
        },
        jitter=lambda: 0.0,
    )
    ingest = IngestService(db, clock, IngestPolicy())
    try:
        await ingest.ingest(inbound(phone("+79167770001"), account="site"))
        for _ in range(3):
            await relay.run_once()
        clock.advance(timedelta(days=6, hours=23))
        await ingest.ingest(inbound(phone("+79167770002"), account="site"))
        for _ in range(30):  # a pass every quarter of an hour, till past the 7 days
            await relay.run_once()
            clock.advance(timedelta(minutes=15))
        statuses = await db.read(_statuses)
        assert statuses == ["expired", "pending"]  # the old one expired, the new one waits
        logged = await db.read(
            lambda s: list(s.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))
        )
        assert [(d.ok, (d.error or "")[:8]) for d in logged] == [(False, "expired:")]
        assert "7 days" in (logged[0].error or "")

        def turn_on(session: Session) -> None:
            update_subscription(session, Journal("test", clock.now()), sub_id, active=True)

        await db.write(turn_on)
        await relay.run_once()
        assert [e for _, e, _ in endpoint.arrived] == ["contact.created"]
        assert await db.read(_statuses) == ["expired", "delivered"]
    finally:
        await poster.close()


def _statuses(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(OutboxMessage.status)
            .where(OutboxMessage.topic == DELIVER_TOPIC)
            .order_by(OutboxMessage.id)
        )
    )
