"""Outbound webhooks through a receiver outage (issue 15, fault 3): nothing is lost.

A real aiohttp receiver goes down (connection refused) while 16 leads come in; when it
is back every event arrives exactly once, and the events of one contact in the order
they happened. The relay is driven pass by pass on a manual clock: no sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.events import EventBus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.models import OutboxMessage, WebhookSubscription
from crm_core.outbox import OutboxRelay, RelayPolicy
from crm_core.webhook_subscriptions import (
    WEBHOOK_TOPIC_PREFIX,
    WebhookDispatcher,
    WebhookFanOut,
    create_subscription,
    update_subscription,
)
from tests.factories import add_managers, inbound, phone
from tests.integration.webhooks.receivers import Endpoint, in_order_per_contact
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret

LEADS = 16


@pytest.fixture
async def endpoint() -> AsyncIterator[Endpoint]:
    target = Endpoint()
    await target.up()
    try:
        yield target
    finally:
        await target.down()


def relay_for(db: Database, clock: ManualClock, poster: WebhookPoster) -> OutboxRelay:
    return OutboxRelay(
        db,
        clock,
        {
            EVENTS_TOPIC: WebhookFanOut(db, clock, EventBus()),
            WEBHOOK_TOPIC_PREFIX: WebhookDispatcher(db, clock, poster),
        },
        RelayPolicy(),
        jitter=lambda: 0.0,
    )


@pytest.mark.parametrize("outage", ["refused", "503"])
async def test_a_short_outage_loses_nothing_and_keeps_each_contacts_order(
    db: Database, clock: ManualClock, endpoint: Endpoint, outage: str
) -> None:
    await add_managers(db, 2)

    def subscribe(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = create_subscription(
            session,
            journal,
            url=endpoint.url,
            events=["contact.created", "deal.created"],
            secret=new_secret(),
        )
        return sub.id

    sub_id = await db.write(subscribe)
    poster = WebhookPoster(timeout=5, allow_private=True)
    relay = relay_for(db, clock, poster)
    ingest = IngestService(db, clock, IngestPolicy())
    try:
        if outage == "refused":
            await endpoint.down()
        else:
            endpoint.status = 503
        for n in range(LEADS):
            await ingest.ingest(inbound(phone(f"+7916123{n:04d}"), account="site"))
        # Three seconds of outage, a relay pass every quarter of a second.
        for _ in range(12):
            await relay.run_once()
            clock.advance(timedelta(milliseconds=250))
        assert endpoint.arrived == []
        if outage == "refused":
            await endpoint.up()
        endpoint.status = 204
        for _ in range(400):
            if len(endpoint.ids()) >= 2 * LEADS:
                break
            await relay.run_once()
            clock.advance(timedelta(seconds=1))
        for _ in range(5):  # nothing more comes: no second copy of anything
            clock.advance(timedelta(hours=1))
            await relay.run_once()
    finally:
        await poster.close()

    print(f"\n{len(endpoint.ids())} of {2 * LEADS} events arrived after the outage")
    assert len(endpoint.ids()) == 2 * LEADS
    assert set(endpoint.ids().values()) == {1}
    assert in_order_per_contact(endpoint.arrived)
    sub = await db.read(lambda s: s.get(WebhookSubscription, sub_id))
    assert sub is not None
    assert sub.active
    assert sub.failure_count == 0


async def test_a_day_long_outage_disables_the_subscription_and_turning_it_on_sends_all(
    db: Database, clock: ManualClock, endpoint: Endpoint
) -> None:
    await add_managers(db, 2)
    started = clock.now()

    def subscribe(session: Session) -> int:
        journal = Journal("test", clock.now())
        sub = create_subscription(
            session,
            journal,
            url=endpoint.url,
            events=["contact.created", "deal.created"],
            secret=new_secret(),
        )
        return sub.id

    sub_id = await db.write(subscribe)
    poster = WebhookPoster(timeout=5, allow_private=True)
    relay = relay_for(db, clock, poster)
    ingest = IngestService(db, clock, IngestPolicy())
    disabled_at = None
    try:
        await endpoint.down()
        for n in range(LEADS):
            await ingest.ingest(inbound(phone(f"+7916444{n:04d}"), account="site"))
        for _ in range(60):  # thirty hours, a relay pass every half hour
            await relay.run_once()
            sub = await db.read(lambda s: s.get(WebhookSubscription, sub_id))
            assert sub is not None
            if disabled_at is None and not sub.active:
                disabled_at = clock.now()
            clock.advance(timedelta(minutes=30))
        assert disabled_at is not None
        assert sub is not None
        assert timedelta(hours=24) <= disabled_at - started <= timedelta(hours=25)
        assert sub.failure_count >= 30
        assert "over 24 h" in (sub.disabled_reason or "")
        assert await db.read(_statuses) == {"pending": 2 * LEADS}  # none dropped, none dead

        await endpoint.up()
        await relay.run_once()
        assert endpoint.arrived == []  # off: still waiting

        def turn_on(session: Session) -> None:
            update_subscription(session, Journal("test", clock.now()), sub_id, active=True)

        await db.write(turn_on)
        for _ in range(20):  # no time passes: what waited is due at once
            if len(endpoint.ids()) >= 2 * LEADS:
                break
            await relay.run_once()
    finally:
        await poster.close()

    assert len(endpoint.ids()) == 2 * LEADS
    assert set(endpoint.ids().values()) == {1}
    assert in_order_per_contact(endpoint.arrived)
    assert await db.read(_statuses) == {"delivered": 2 * LEADS}


def _statuses(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.topic == "webhook.deliver")
        .group_by(OutboxMessage.status)
    )
    return {str(status): int(count) for status, count in rows}
