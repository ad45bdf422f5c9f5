"""Replies leave through the outbox to the channel's sender, and their status is recorded.

The sender here is a test double of a channel: the real channels are tested against
their real peers in their connectors' tests.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.contracts import DeliveryReceipt, OutboundMessage, PermanentSendError, SendError
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Conversation, Message, OutboxMessage
from crm_core.outbox import OutboxRelay, RelayPolicy
from crm_core.replies import SEND_TOPIC_PREFIX, ReplyError, SendDispatcher, queue_reply
from tests.factories import add_managers, event_names, inbound, phone, telegram


class RecordingSender:
    def __init__(self, *failures: Exception) -> None:
        self.sent: list[OutboundMessage] = []
        self._failures = list(failures)

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(message)
        return DeliveryReceipt(external_id=f"tg-{len(self.sent)}")


async def _conversation(db: Database, clock: ManualClock) -> tuple[int, int]:
    service = IngestService(db, clock, IngestPolicy())
    managers = await add_managers(db, 1)
    result = await service.ingest(
        inbound(
            telegram("4242"),
            phone("+79161234567"),
            channel="telegram",
            account="salesbot",
            external_id="upd-1",
        )
    )
    return result.conversation_id, managers[0]


async def _reply(
    db: Database, clock: ManualClock, conversation_id: int, manager: int | None
) -> int:
    def work(session: Session) -> int:
        journal = Journal(f"manager:{manager}", clock.now())
        message = queue_reply(
            session, journal, conversation_id, "Добрый день!", author_manager_id=manager
        )
        journal.flush(session)
        return message.id

    return await db.write(work)


def _relay(
    db: Database, clock: ManualClock, sender: RecordingSender, attempts: int = 3
) -> OutboxRelay:
    dispatcher = SendDispatcher(db, clock, {Channel.TELEGRAM: sender}, attempts)
    return OutboxRelay(
        db,
        clock,
        {SEND_TOPIC_PREFIX: dispatcher},
        RelayPolicy(max_attempts=attempts),
        jitter=lambda: 0.0,
    )


async def test_reply_is_sent_in_the_clients_channel(db: Database, clock: ManualClock) -> None:
    conversation_id, manager = await _conversation(db, clock)
    clock.advance(timedelta(minutes=3))
    message_id = await _reply(db, clock, conversation_id, manager)
    queued = await db.read(lambda s: s.get(Message, message_id))
    assert queued is not None
    assert (queued.direction, queued.delivery_status) == ("out", "queued")
    conversation = await db.read(lambda s: s.get(Conversation, conversation_id))
    assert conversation is not None
    assert conversation.first_response_at == clock.now()

    sender = RecordingSender()
    await _relay(db, clock, sender).run_once()
    [sent] = sender.sent
    assert sent.message_id == message_id
    assert sent.channel_account == "salesbot"
    assert [r.value for r in sent.recipients] == ["4242"]
    assert sent.in_reply_to == "upd-1"
    stored = await db.read(lambda s: s.get(Message, message_id))
    assert stored is not None
    assert (stored.delivery_status, stored.external_id) == ("sent", "tg-1")
    assert "message.status_changed" in await event_names(db)


async def test_temporary_failures_are_retried_then_given_up(
    db: Database, clock: ManualClock
) -> None:
    conversation_id, manager = await _conversation(db, clock)
    message_id = await _reply(db, clock, conversation_id, manager)
    sender = RecordingSender(SendError("429"), SendError("502"), SendError("timeout"))
    relay = _relay(db, clock, sender, attempts=3)
    await relay.run_once()
    clock.advance(timedelta(minutes=1))
    await relay.run_once()
    stored = await db.read(lambda s: s.get(Message, message_id))
    assert stored is not None
    assert stored.delivery_status == "queued"
    clock.advance(timedelta(minutes=1))
    await relay.run_once()
    stored = await db.read(lambda s: s.get(Message, message_id))
    assert stored is not None
    assert stored.delivery_status == "failed"
    assert stored.delivery_error is not None
    assert "gave up after 3 attempts" in stored.delivery_error
    assert sender.sent == []


async def test_a_permanent_failure_is_not_retried(db: Database, clock: ManualClock) -> None:
    conversation_id, manager = await _conversation(db, clock)
    message_id = await _reply(db, clock, conversation_id, manager)
    sender = RecordingSender(PermanentSendError("Forbidden: bot was blocked by the user"))
    await _relay(db, clock, sender).run_once()
    stored = await db.read(lambda s: s.get(Message, message_id))
    assert stored is not None
    assert stored.delivery_status == "failed"
    assert stored.delivery_error == "Forbidden: bot was blocked by the user"
    outbox = await db.read(
        lambda s: s.scalars(
            select(OutboxMessage).where(OutboxMessage.topic == "send.telegram")
        ).one()
    )
    assert (outbox.status, outbox.attempts) == ("delivered", 1)


async def test_a_contact_the_channel_cannot_reach_is_refused(
    db: Database, clock: ManualClock
) -> None:
    service = IngestService(db, clock, IngestPolicy())
    result = await service.ingest(inbound(phone("+79161234567")))  # the API channel
    with pytest.raises(ReplyError, match="api channel"):
        await _reply(db, clock, result.conversation_id, 0)
    with pytest.raises(LookupError):
        await _reply(db, clock, 999, 0)
