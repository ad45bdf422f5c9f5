"""A change that can happen again is a new event each time: nothing collides in the outbox,
and no webhook receiver loses a repeat to deduplication."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.contracts import Edit
from crm_core.db import Database
from crm_core.enums import Channel, DeliveryStatus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, Journal, unpacked
from crm_core.models import OutboxMessage
from crm_core.replies import record_delivery
from crm_core.tasks import TaskChange, change_task
from crm_core.timers import TimerRunner
from routing import load_config
from tests.factories import WHEN, inbound, telegram
from tests.integration.test_replies import _reply

_ROUTING = load_config({"teams": {"Sales": {"members": []}}, "rules": [{"team": "Sales"}]})


async def _event_keys(db: Database, event: str) -> list[str]:
    def work(session: Session) -> list[str]:
        rows = session.execute(
            select(OutboxMessage.idempotency_key, OutboxMessage.payload).where(
                OutboxMessage.topic == EVENTS_TOPIC
            )
        )
        return [
            k for key, payload in rows for k, p in unpacked(payload, key) if p["event"] == event
        ]

    return await db.read(work)


async def test_two_transactions_whose_first_event_has_the_same_key_both_commit(
    db: Database,
) -> None:
    def announce(session: Session) -> None:
        journal = Journal("test", WHEN)
        journal.emit("deal.created", 7, {})
        journal.flush(session)

    await db.write(announce)
    await db.write(announce)
    assert len(await _event_keys(db, "deal.created")) == 2


def _deliver(
    session: Session, *, message_id: int, status: DeliveryStatus, clock: ManualClock
) -> None:
    record_delivery(session, Journal("test", clock.now()), message_id, status)


async def test_a_delivery_status_that_repeats_is_announced_each_time(
    db: Database, clock: ManualClock
) -> None:
    first = await IngestService(db, clock, IngestPolicy()).ingest(
        inbound(telegram("5"), channel="telegram", account="bot")
    )
    message_id = await _reply(db, clock, first.conversation_id, None)
    for status in (DeliveryStatus.FAILED, DeliveryStatus.SENT, DeliveryStatus.FAILED):
        await db.write(partial(_deliver, message_id=message_id, status=status, clock=clock))
    keys = await _event_keys(db, "message.status_changed")
    assert len(keys) == len(set(keys)) == 3


async def test_a_task_overdue_again_after_a_new_due_time_is_announced_again(
    db: Database, clock: ManualClock
) -> None:
    first = await IngestService(db, clock, IngestPolicy()).ingest(
        inbound(telegram("5"), channel="telegram", account="bot")
    )
    task_id = first.task_id
    assert task_id is not None
    runner = TimerRunner(db, clock, lambda: _ROUTING)
    clock.advance(timedelta(days=1))
    await runner.run_once()

    def postpone(session: Session) -> None:
        journal = Journal("test", clock.now())
        change_task(session, journal, task_id, TaskChange(due_at=clock.now() + timedelta(hours=1)))
        journal.flush(session)

    await db.write(postpone)
    clock.advance(timedelta(hours=2))
    await runner.run_once()
    keys = await _event_keys(db, "task.overdue")
    assert len(keys) == len(set(keys)) == 2


async def test_two_messages_edited_in_the_same_second_are_two_events(
    db: Database, clock: ManualClock
) -> None:
    service = IngestService(db, clock, IngestPolicy())
    for n in (1, 2):
        await service.ingest(
            inbound(telegram(str(n)), channel="telegram", account="bot", external_id=f"m{n}")
        )
    edited_at = WHEN + timedelta(minutes=1)
    for n in (1, 2):
        assert await service.edit(Edit(Channel.TELEGRAM, "bot", f"m{n}", "fixed", edited_at))
    keys = await _event_keys(db, "message.edited")
    assert len(keys) == len(set(keys)) == 2
