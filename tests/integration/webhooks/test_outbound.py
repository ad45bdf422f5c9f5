"""Outbound webhooks: subscriptions, fan-out, signed delivery with retries, the log."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.events import EventBus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage, WebhookSubscription
from crm_core.outbox import Deferred, OutboxItem, OutboxRelay
from crm_core.webhook_subscriptions import (
    WebhookDeliveryError,
    WebhookDispatcher,
    WebhookFanOut,
    create_subscription,
)
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, api_token, inbound, phone
from webhooks.delivery import PostResult, PublicOnlyResolver, WebhookPoster
from webhooks.signatures import new_secret
from webhooks.sources import SourceConfigError, load_config

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


class Receiver:
    """A subscriber's endpoint that fails ``failures`` times, then answers 204."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests: list[tuple[dict[str, str], bytes]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        if len(self.requests) <= self.failures:
            return web.Response(status=503, text="busy")
        return web.Response(status=204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    target = Receiver(failures=2)
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield target, str(server.make_url("/hook"))
    finally:
        await server.close()


def _verify(headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(part, f"v1,{expected}") for part in headers["webhook-signature"].split()
    )


async def test_a_receiver_that_fails_twice_gets_the_event_three_times_with_one_id(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    receiver: tuple[Receiver, str],
) -> None:
    target, url = receiver
    token = await api_token(db)
    await add_managers(db, 1)

    def subscribe(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = create_subscription(session, journal, url=url, events=["deal.created"], secret=SECRET)
        return sub.id

    sub_id = await db.write(subscribe)
    ingest = IngestService(db, clock, IngestPolicy())
    result = await ingest.ingest(inbound(phone("+79161234567"), account="site"))
    poster = WebhookPoster(allow_private=True)  # the receiver listens on 127.0.0.1
    relay = OutboxRelay(
        db,
        clock,
        {
            EVENTS_TOPIC: WebhookFanOut(db, clock, EventBus()),
            "webhook.": WebhookDispatcher(db, clock, poster),
        },
        jitter=lambda: 0.0,
    )
    try:
        await relay.run_once()  # events fan out into deliveries
        await relay.run_once()  # the first delivery: 503
        assert len(target.requests) == 1
        await relay.run_once()
        assert len(target.requests) == 1  # not due before its backoff
        clock.advance(timedelta(seconds=2))
        await relay.run_once()
        assert len(target.requests) == 2
        clock.advance(timedelta(seconds=4))
        await relay.run_once()
        assert len(target.requests) == 3
        clock.advance(timedelta(hours=1))
        await relay.run_once()
        assert len(target.requests) == 3
    finally:
        await poster.close()

    ids = {headers["webhook-id"] for headers, _ in target.requests}
    assert len(ids) == 1
    assert all(_verify(headers, body) for headers, body in target.requests)
    bodies = {body for _, body in target.requests}
    assert len(bodies) == 1
    event = json.loads(bodies.pop())
    assert event["type"] == "deal.created"
    assert event["data"]["deal_id"] == result.deal_id
    stamps = [int(headers["webhook-timestamp"]) for headers, _ in target.requests]
    assert stamps == sorted(stamps)
    assert stamps[0] < stamps[-1]

    app = create_app(Settings(database_url=database_url), clock=clock)
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {token}"}
    path = f"/api/v1/webhooks/subscriptions/{sub_id}"
    log = await client.get(f"{path}/deliveries", headers=auth)
    assert log.status == 200
    items = (await log.json())["items"]
    assert [(i["attempt"], i["ok"], i["status_code"]) for i in items] == [
        (1, False, 503),
        (2, False, 503),
        (3, True, 204),
    ]
    assert {i["webhook_id"] for i in items} == ids
    again = await client.get(path, headers=auth)
    assert (await again.json())["failure_count"] == 0


async def test_fan_out_twice_writes_one_delivery_per_subscription(
    db: Database, clock: ManualClock
) -> None:
    def add(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = WebhookSubscription(
            url="http://127.0.0.1:9/x",
            events=["deal.*"],
            secret=new_secret(),
            description="",
            active=True,
            failure_count=0,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(sub)
        session.flush()
        journal.flush(session)
        return sub.id

    sub_id = await db.write(add)
    seen: list[OutboxItem] = []

    async def downstream(item: OutboxItem) -> None:
        seen.append(item)

    fan_out = WebhookFanOut(db, clock, downstream)
    won = {"key": "deal.won:7", "payload": {"event": "deal.won", "deal_id": 7}}
    created = {"key": "task.created:3", "payload": {"event": "task.created"}}
    item = OutboxItem(1, EVENTS_TOPIC, "events:deal.won:7", {"events": [won]}, 1)
    other = OutboxItem(2, EVENTS_TOPIC, "events:task.created:3", {"events": [created]}, 1)
    # A row from before events travelled together: one event, keyed by the row.
    legacy = OutboxItem(3, "event.deal.won", "deal.won:8", {"event": "deal.won", "deal_id": 8}, 1)
    await fan_out(item)
    await fan_out(item)
    await fan_out(other)
    await fan_out(legacy)
    rows = await db.read(lambda s: list(s.scalars(select(OutboxMessage))))
    assert [(r.topic, r.idempotency_key) for r in rows] == [
        ("webhook.deliver", f"{sub_id}:deal.won:7"),
        ("webhook.deliver", f"{sub_id}:deal.won:8"),
    ]
    assert len(seen) == 4


async def test_deliveries_go_only_to_public_addresses_by_default(
    receiver: tuple[Receiver, str],
) -> None:
    target, url = receiver  # on 127.0.0.1
    poster = WebhookPoster()
    try:
        result = await poster.deliver(url, SECRET, "msg_1", 1, b"{}")
        assert result.status is None
        assert (result.error or "").startswith("refused: 127.0.0.1 is not a public address")
        assert target.requests == []
    finally:
        await poster.close()
    # A name is checked on the addresses it resolves to when the hook is sent.
    resolver = PublicOnlyResolver()
    try:
        with pytest.raises(OSError, match="resolves only to private addresses"):
            await resolver.resolve("localhost", 80)
    finally:
        await resolver.close()


class _Failing:
    async def deliver(
        self, url: str, secret: str, webhook_id: str, timestamp: int, body: bytes
    ) -> PostResult:
        return PostResult(500, "HTTP 500")


class _Working:
    async def deliver(
        self, url: str, secret: str, webhook_id: str, timestamp: int, body: bytes
    ) -> PostResult:
        return PostResult(204, None)


async def test_a_subscription_that_keeps_failing_is_disabled(
    db: Database, clock: ManualClock
) -> None:
    def add(session: Session) -> int:
        sub = WebhookSubscription(
            url="http://127.0.0.1:9/x",
            events=["*"],
            secret=new_secret(),
            description="",
            active=True,
            failure_count=0,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(sub)
        session.flush()
        return sub.id

    sub_id = await db.write(add)
    dispatcher = WebhookDispatcher(db, clock, _Failing(), disable_after=3)
    payload = {"subscription_id": sub_id, "webhook_id": "msg_1", "event": "x.y", "body": "{}"}
    # Five failures within a second are a burst, not an outage: still on.
    for attempt in range(1, 6):
        with pytest.raises(WebhookDeliveryError, match="HTTP 500"):
            await dispatcher(OutboxItem(1, "webhook.deliver", "k", payload, attempt))
        clock.advance(timedelta(milliseconds=100))
    sub = await db.read(lambda s: s.get(WebhookSubscription, sub_id))
    assert sub is not None
    assert (sub.active, sub.failure_count) == (True, 5)
    assert sub.failing_since == clock.now() - timedelta(milliseconds=500)
    # Still failing a day after the first failure of the streak: off.
    clock.advance(timedelta(hours=24))
    with pytest.raises(WebhookDeliveryError, match="HTTP 500"):
        await dispatcher(OutboxItem(1, "webhook.deliver", "k", payload, 6))
    sub = await db.read(lambda s: s.get(WebhookSubscription, sub_id))
    assert sub is not None
    assert (sub.active, sub.failure_count) == (False, 6)
    assert "over 24 h" in (sub.disabled_reason or "")
    # A disabled subscription's delivery waits, without a request and without an attempt.
    with pytest.raises(Deferred, match="the subscription is off"):
        await dispatcher(OutboxItem(1, "webhook.deliver", "k", payload, 7))


async def test_a_success_ends_the_streak_so_failures_far_apart_never_disable(
    db: Database, clock: ManualClock
) -> None:
    def add(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = create_subscription(
            session, journal, url="http://127.0.0.1:9/x", events=["*"], secret=new_secret()
        )
        return sub.id

    sub_id = await db.write(add)
    failing = WebhookDispatcher(db, clock, _Failing(), disable_after=2)
    working = WebhookDispatcher(db, clock, _Working(), disable_after=2)
    payload = {"subscription_id": sub_id, "webhook_id": "msg_1", "event": "x.y", "body": "{}"}
    for _day in range(3):
        for attempt in (1, 2, 3):
            with pytest.raises(WebhookDeliveryError):
                await failing(OutboxItem(1, "webhook.deliver", "k", payload, attempt))
            clock.advance(timedelta(hours=7))
        await working(OutboxItem(1, "webhook.deliver", "k", payload, 4))
    sub = await db.read(lambda s: s.get(WebhookSubscription, sub_id))
    assert sub is not None
    assert (sub.active, sub.failure_count, sub.failing_since) == (True, 0, None)


async def test_admin_api_validates_and_hides_the_secret(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    token = await api_token(db)
    client = await aiohttp_client(create_app(Settings(database_url=database_url), clock=clock))
    auth = {"Authorization": f"Bearer {token}"}
    path = "/api/v1/webhooks/subscriptions"
    bad = await client.post(path, json={"url": "ftp://x", "events": ["deal.won"]}, headers=auth)
    assert bad.status == 400
    unknown = await client.post(
        path, json={"url": "https://example.test/h", "events": ["Deal Won!"]}, headers=auth
    )
    assert unknown.status == 400
    assert "Deal Won!" in (await unknown.json())["message"]
    assert (
        await client.post(path, json={"url": "https://e.test/h", "events": ["*"]})
    ).status == 401
    for private in ("http://127.0.0.1:8080/h", "http://[::1]/h", "http://169.254.169.254/x"):
        refused = await client.post(path, json={"url": private, "events": ["*"]}, headers=auth)
        assert refused.status == 400
        assert "is not a public address" in (await refused.json())["message"]
    made = await client.post(
        path, json={"url": "https://example.test/h", "events": ["deal.*"]}, headers=auth
    )
    assert made.status == 201
    created = await made.json()
    assert created["secret"].startswith("whsec_")
    listed = await (await client.get(path, headers=auth)).json()
    assert [i["id"] for i in listed["items"]] == [created["id"]]
    assert created["secret"] not in json.dumps(listed)
    off = await client.patch(f"{path}/{created['id']}", json={"active": False}, headers=auth)
    assert (await off.json())["active"] is False
    assert (await client.get(f"{path}/999", headers=auth)).status == 404
    assert (await client.get(f"{path}/999/deliveries", headers=auth)).status == 404


PRIVATE_FORMS = [
    "http://127.1/h",
    "http://0x7f000001/h",
    "http://2130706433/h",
    "http://0/h",
    "http://0177.0.0.1/h",
    "http://127.0.0.1./h",
    "http://0x7f.1:8080/h",
    "http://10.1/h",
    "http://0xa9fea9fe/latest/meta-data",  # 169.254.169.254
    "http://[::ffff:127.0.0.1]/h",
    "http://[::ffff:a9fe:a9fe]/h",
    "http://[::]/h",
    "http://[0:0:0:0:0:0:0:1]/h",
    "http://[fe80::1%25eth0]/h",
    "http://localhost./h",
    "http://LOCALHOST/h",
    "http://api.localhost/h",
    "http://224.0.0.1/h",
    "http://240.0.0.1/h",
    "http://255.255.255.255/h",
    "http://100.64.0.1/h",
    "http://[ff02::1]/h",
    "http://[2002:7f00:1::]/h",  # 6to4 of 127.0.0.1
    "http://\N{CIRCLED DIGIT ONE}27.0.0.1/h",  # IDNA folds it to 127.0.0.1
]


@pytest.mark.parametrize("url", PRIVATE_FORMS)
async def test_every_form_of_a_private_target_is_refused_at_subscription_time(
    sqlite_url: str, clock: ManualClock, aiohttp_client: ClientFactory, url: str
) -> None:
    db = Database(sqlite_url)
    try:
        token = await api_token(db)
    finally:
        await db.dispose()
    client = await aiohttp_client(create_app(Settings(database_url=sqlite_url), clock=clock))
    auth = {"Authorization": f"Bearer {token}"}
    path = "/api/v1/webhooks/subscriptions"
    refused = await client.post(path, json={"url": url, "events": ["*"]}, headers=auth)
    assert refused.status == 400, await refused.text()
    body = await refused.json()
    assert body["errors"][0]["field"] == "url"
    assert "is not a public address" in body["message"]
    made = await client.post(
        path, json={"url": "https://example.test/h", "events": ["*"]}, headers=auth
    )
    assert made.status == 201
    sub = await made.json()
    patched = await client.patch(f"{path}/{sub['id']}", json={"url": url}, headers=auth)
    assert patched.status == 400, await patched.text()
    assert (await patched.json())["errors"][0]["field"] == "url"
    # The delivery path makes the same decision, before any connection.
    poster = WebhookPoster()
    try:
        result = await poster.deliver(url, SECRET, "msg_1", 1, b"{}")
    finally:
        await poster.close()
    assert (result.status, (result.error or "")[:9]) == (None, "refused: ")


async def test_allow_private_targets_takes_them(
    sqlite_url: str, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    db = Database(sqlite_url)
    try:
        token = await api_token(db)
    finally:
        await db.dispose()
    settings = Settings(
        database_url=sqlite_url, channels={"webhooks": {"allow_private_targets": True}}
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    auth = {"Authorization": f"Bearer {token}"}
    for url in ("http://127.1/h", "http://[::ffff:127.0.0.1]/h", "http://10.0.0.5/h"):
        made = await client.post(
            "/api/v1/webhooks/subscriptions", json={"url": url, "events": ["*"]}, headers=auth
        )
        assert made.status == 201, await made.text()
    assert WebhookPoster(allow_private=True).refusal("http://0x7f000001/") is None


def test_the_outage_settings_have_defaults_and_refuse_nonsense() -> None:
    default = load_config({})
    assert (default.disable_after_failures, default.disable_after_hours) == (30, 24)
    assert default.delivery_retention_days == 7
    chosen = load_config({"disable_after_hours": 72, "delivery_retention_days": 14})
    assert (chosen.disable_after_hours, chosen.delivery_retention_days) == (72, 14)
    for bad in ({"disable_after_hours": 0}, {"delivery_retention_days": "7"}):
        with pytest.raises(SourceConfigError, match="expected a positive integer"):
            load_config(bad)
