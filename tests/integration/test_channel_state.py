"""Checkpoints stored with their messages, edits with history, unreachable identities."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from crm_core.clock import ManualClock
from crm_core.contracts import Checkpoint, Edit, IdentityRef, RecipientUnreachableError
from crm_core.db import Database
from crm_core.enums import Channel, IdentityKind
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import ContactIdentity, Message, MessageRevision
from crm_core.outbox import OutboxRelay
from crm_core.replies import SEND_TOPIC_PREFIX, SendDispatcher
from tests.factories import WHEN, email, inbound, telegram
from tests.integration.test_replies import RecordingSender, _reply


async def test_checkpoint_is_stored_with_the_message_and_with_a_repeat(
    db: Database, clock: ManualClock
) -> None:
    service = IngestService(db, clock, IngestPolicy())
    message = inbound(email("ivan@example.test"), channel="email", account="sales@x.test")
    await service.ingest(message, Checkpoint("INBOX", "7:101"))
    assert await service.checkpoint(Channel.EMAIL, "sales@x.test", "INBOX") == "7:101"
    await service.ingest(message, Checkpoint("INBOX", "7:102"))  # a repeat still advances
    assert await service.checkpoint(Channel.EMAIL, "sales@x.test", "INBOX") == "7:102"
    assert await service.checkpoint(Channel.EMAIL, "sales@x.test", "Sent") is None
    assert await service.checkpoint(Channel.EMAIL, "other@x.test", "INBOX") is None


async def test_an_edit_changes_the_text_and_keeps_the_old(db: Database, clock: ManualClock) -> None:
    service = IngestService(db, clock, IngestPolicy())
    stored = await service.ingest(
        inbound(telegram("5"), channel="telegram", account="bot", external_id="m1", text="Helo")
    )
    edit = Edit(Channel.TELEGRAM, "bot", "m1", "Hello", WHEN + timedelta(minutes=1))
    assert await service.edit(edit)
    assert not await service.edit(Edit(Channel.TELEGRAM, "bot", "nope", "x", WHEN))
    message = await db.read(lambda s: s.get(Message, stored.message_id))
    assert message is not None
    assert message.text == "Hello"
    revisions = await db.read(lambda s: [r.text for r in s.scalars(select(MessageRevision))])
    assert revisions == ["Helo"]


async def test_a_blocked_recipient_is_flagged_until_it_writes_again(
    db: Database, clock: ManualClock
) -> None:
    service = IngestService(db, clock, IngestPolicy())
    first = await service.ingest(inbound(telegram("77"), channel="telegram", account="bot"))
    message_id = await _reply(db, clock, first.conversation_id, None)
    blocked = RecordingSender(
        RecipientUnreachableError(IdentityRef(IdentityKind.TELEGRAM, "77"), "bot was blocked")
    )
    dispatcher = SendDispatcher(db, clock, {Channel.TELEGRAM: blocked}, 3)
    await OutboxRelay(db, clock, {SEND_TOPIC_PREFIX: dispatcher}).run_once()
    identity = await db.read(lambda s: s.scalars(select(ContactIdentity)).one())
    assert identity.unreachable_reason == "bot was blocked"
    failed = await db.read(lambda s: s.get(Message, message_id))
    assert failed is not None
    assert failed.delivery_status == "failed"

    await service.ingest(inbound(telegram("77"), channel="telegram", account="bot"))
    identity = await db.read(lambda s: s.scalars(select(ContactIdentity)).one())
    assert identity.unreachable_at is None
    assert await service.mark_unreachable(IdentityRef(IdentityKind.TELEGRAM, "77"), "again")
    assert not await service.mark_unreachable(IdentityRef(IdentityKind.TELEGRAM, "78"), "x")
