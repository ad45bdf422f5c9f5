"""Webhook bodies carry the object as it was when the event happened, next to its ids, as
the OpenAPI document says: through the real outbound path (fan-out, signed POST)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.access import Viewer
from crm_core.clock import ManualClock
from crm_core.contracts import Attribution
from crm_core.conversation_actions import add_note, set_status
from crm_core.db import Database
from crm_core.deals import move_deal
from crm_core.enums import CallDisposition, Channel, ConversationStatus, DeliveryStatus
from crm_core.events import EventBus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, Journal
from crm_core.merge import undo_merge
from crm_core.models import ContactMerge
from crm_core.outbox import OutboxRelay
from crm_core.replies import queue_reply, record_delivery
from crm_core.tasks import TaskChange, change_task, complete_task
from crm_core.timers import TimerRunner
from crm_core.webhook_subscriptions import WebhookDispatcher, WebhookFanOut, create_subscription
from routing import load_config
from tests.factories import WHEN, add_managers, email, inbound, phone, telegram
from tests.integration.test_calls import call_message
from tests.unit.test_event_schemas import strict_validator
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret

UTM = Attribution(
    utm_source="yandex",
    utm_medium="cpc",
    utm_campaign="spring_sale",
    gclid=None,
    landing_page="https://example.test/pg?utm_source=yandex",
)


class Collector:
    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(json.loads(await request.read()))
        return web.Response(status=204)

    def of(self, event: str) -> list[dict[str, Any]]:
        return [b["data"] for b in self.bodies if b["type"] == event]


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    target = Collector()
    app = web.Application()
    app.router.add_post("/hook", target.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield target, str(server.make_url("/hook"))
    finally:
        await server.close()


async def _deliver_all(db: Database, clock: ManualClock, target: Collector) -> None:
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
        seen = -1
        while seen != len(target.bodies):  # until a round sends nothing more
            seen = len(target.bodies)
            for _ in range(3):
                await relay.run_once()
    finally:
        await poster.close()


async def test_webhooks_carry_the_deal_contact_message_and_more_as_documented(
    db: Database, clock: ManualClock, collector: tuple[Collector, str]
) -> None:
    target, url = collector
    [manager, other] = await add_managers(db, 2)

    def subscribe(session: Session) -> None:
        journal = Journal("test", clock.now())
        create_subscription(session, journal, url=url, events=["*"], secret=new_secret())
        journal.flush(session)

    await db.write(subscribe)
    ingest = IngestService(db, clock, IngestPolicy())
    lead = await ingest.ingest(
        inbound(
            phone("+79161234567"),
            name="Анна <script>",
            text="Сколько стоит кластер? <b>срочно</b>",
            attribution=UTM,
            account="landing",
        )
    )
    chat = await ingest.ingest(inbound(telegram("5550001"), channel=Channel.TELEGRAM, name="Bob"))
    assert lead.deal_id is not None
    assert lead.task_id is not None

    def work(session: Session) -> None:
        journal = Journal("test", clock.now())
        assert lead.deal_id is not None
        assert lead.task_id is not None
        move_deal(session, lead.deal_id, "won", journal, amount=Decimal("1500"))
        change_task(session, journal, lead.task_id, TaskChange(assignee_id=other))
        complete_task(session, journal, lead.task_id)
        add_note(session, journal, Viewer("test"), lead.conversation_id, "called, happy")
        set_status(
            session, journal, Viewer("test"), lead.conversation_id, ConversationStatus.CLOSED
        )
        sent = queue_reply(
            session, journal, chat.conversation_id, "Hello Bob", author_manager_id=manager
        )
        session.flush()
        record_delivery(session, journal, sent.id, DeliveryStatus.SENT, external_id="tg-1")

    await db.write(work)
    await _deliver_all(db, clock, target)

    [created] = [d for d in target.of("deal.created") if d["deal_id"] == lead.deal_id]
    assert created["funnel"] == "consultation"
    deal = created["deal"]
    assert deal["id"] == lead.deal_id
    assert deal["title"] == "Анна <script> — api"
    assert (deal["funnel"], deal["stage"], deal["stage_id"]) == (
        "consultation",
        "new",
        created["stage_id"],
    )
    assert (deal["amount"], deal["currency"], deal["is_open"]) == (None, "RUB", True)
    assert deal["contact_id"] == lead.contact_id == created["contact_id"]
    assert deal["conversation_id"] == lead.conversation_id
    attribution = deal["attribution"]
    assert attribution["utm_source"] == "yandex"
    assert attribution["utm_campaign"] == "spring_sale"
    assert attribution["landing_page"] == UTM.landing_page
    assert attribution["gclid"] is None
    assert (attribution["channel"], attribution["channel_account"]) == ("api", "landing")

    [won] = target.of("deal.won")
    assert (won["deal"]["stage"], won["deal"]["amount"], won["deal"]["is_open"]) == (
        "won",
        "1500.00",
        False,
    )
    assert won["deal"]["attribution"] == attribution  # the same first touch, read once
    assert won["deal"]["closed_at"] is not None

    contacts = {c["contact_id"]: c for c in target.of("contact.created")}
    contact = contacts[lead.contact_id]["contact"]
    assert contact["name"] == "Анна <script>"  # untrusted text is data, sent as it is
    assert contact["identities"] == [{"kind": "phone", "value": "+79161234567"}]
    assert contact["is_test"] is False
    assert contacts[chat.contact_id]["contact"]["identities"] == [
        {"kind": "telegram", "value": "5550001"}
    ]

    messages = {m["message_id"]: m["message"] for m in target.of("message.created")}
    inbound_message = messages[lead.message_id]
    assert inbound_message["text"] == "Сколько стоит кластер? <b>срочно</b>"
    assert (inbound_message["channel"], inbound_message["direction"]) == ("api", "in")
    assert inbound_message["conversation_id"] == lead.conversation_id
    [reply] = [m for m in messages.values() if m["direction"] == "out"]
    assert (reply["text"], reply["channel"], reply["author_manager_id"]) == (
        "Hello Bob",
        "telegram",
        manager,
    )
    assert reply["delivery_status"] == "queued"
    [status] = target.of("message.status_changed")
    assert (status["message"]["delivery_status"], status["message"]["external_id"]) == (
        "sent",
        "tg-1",
    )
    [note] = target.of("note.created")
    assert (note["message"]["direction"], note["message"]["text"]) == ("note", "called, happy")

    [conversation] = [
        c for c in target.of("conversation.created") if c["conversation_id"] == lead.conversation_id
    ]
    assert conversation["conversation"]["status"] == "open"
    [closed] = target.of("conversation.closed")
    assert closed["conversation"]["status"] == "closed"

    [task] = [t for t in target.of("task.created") if t["task_id"] == lead.task_id]
    assert task["task"]["status"] == "open"
    assert task["task"]["deal_id"] == lead.deal_id
    [reassigned] = target.of("task.reassigned")
    assert reassigned["task"]["assignee_id"] == other
    [done] = target.of("task.completed")
    assert done["task"]["status"] == "done"
    assert done["task"]["done_at"] is not None

    # Every body, of whatever event, is what the document says: no field more, none less.
    assert len({b["type"] for b in target.bodies}) >= 12
    for body in target.bodies:
        errors = [e.message for e in strict_validator(body["type"]).iter_errors(body)]
        assert errors == [], (body["type"], errors)


async def test_calls_merges_and_overdue_tasks_carry_their_objects_too(
    db: Database, clock: ManualClock, collector: tuple[Collector, str]
) -> None:
    target, url = collector
    await add_managers(db, 1)

    def subscribe(session: Session) -> None:
        journal = Journal("test", clock.now())
        create_subscription(session, journal, url=url, events=["*"], secret=new_secret())
        journal.flush(session)

    await db.write(subscribe)
    ingest = IngestService(db, clock, IngestPolicy())
    missed = call_message("ring@host", CallDisposition.MISSED)
    first = await ingest.ingest(missed)
    assert missed.call is not None
    answered = replace(missed.call, disposition=CallDisposition.ANSWERED, answered_at=WHEN)
    await ingest.ingest(replace(missed, call=answered))  # a later record: it was answered
    by_mail = await ingest.ingest(inbound(email("anna@example.test"), name="Anna"))
    both = await ingest.ingest(inbound(phone("+79161234567"), email("anna@example.test")))
    [merged_id] = both.merged_contact_ids

    def undo(session: Session) -> None:
        journal = Journal("test", clock.now())
        merge = session.scalars(select(ContactMerge)).one()
        undo_merge(session, merge.id, journal)
        journal.flush(session)

    await db.write(undo)
    clock.advance(timedelta(days=2))
    await TimerRunner(db, clock, lambda: load_config({})).run_once()
    await _deliver_all(db, clock, target)

    [call_missed] = target.of("call.missed")
    assert call_missed["call"]["disposition"] == "missed"
    assert call_missed["call"]["caller"] == "+79161234567"
    assert call_missed["call"]["contact_id"] == first.contact_id
    [call_ended] = target.of("call.ended")
    assert call_ended["previous_disposition"] == "missed"
    assert call_ended["call"]["disposition"] == "answered"
    [merged] = target.of("contact.merged")
    assert merged_id == by_mail.contact_id
    assert merged["contact"]["id"] == first.contact_id
    assert {i["kind"] for i in merged["contact"]["identities"]} == {"phone", "email"}
    [undone] = target.of("contact.merge_undone")
    assert [i["kind"] for i in undone["contact"]["identities"]] == ["phone"]
    overdue = target.of("task.overdue")
    assert overdue
    assert all(t["task"]["overdue_at"] is not None for t in overdue)
    assert {t["task"]["id"] for t in overdue} == {t["task_id"] for t in overdue}
    for body in target.bodies:
        errors = [e.message for e in strict_validator(body["type"]).iter_errors(body)]
        assert errors == [], (body["type"], errors)
