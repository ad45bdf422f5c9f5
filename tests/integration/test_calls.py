"""Calls through the ingest transaction (SQLite and PostgreSQL): one record per Call-ID,
a call back for a missed call instead of the default first task, the automation trigger."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.automation import Automation, Trigger
from crm_core.clock import ManualClock
from crm_core.contracts import Attachment, CallRecord, IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import CallDisposition, Channel, Direction, IdentityKind, TaskKind
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Call, Deal, Message, Stage, Task
from tests.factories import WHEN, add_managers, count_rows, emitted, inbound, phone


@pytest.fixture
def service(db: Database, clock: ManualClock) -> IngestService:
    return IngestService(db, clock, IngestPolicy(first_task_due=timedelta(minutes=60)))


def call_message(
    call_id: str,
    disposition: CallDisposition,
    *,
    caller: str = "+79161234567",
    manager_id: int | None = None,
    voicemail: Attachment | None = None,
) -> InboundMessage:
    answered = WHEN + timedelta(seconds=5) if disposition is CallDisposition.ANSWERED else None
    record = CallRecord(
        line="office",
        call_id=call_id,
        caller=caller,
        callee="sip:office@127.0.0.1",
        direction=Direction.INBOUND,
        started_at=WHEN,
        disposition=disposition,
        answered_at=answered,
        ended_at=WHEN + timedelta(seconds=70),
        manager_id=manager_id,
        voicemail=voicemail,
    )
    return InboundMessage(
        channel=Channel.PHONE,
        channel_account="office",
        external_id=record.key,
        identities=(IdentityRef(IdentityKind.PHONE, caller),),
        occurred_at=WHEN,
        text=record.summary(),
        attachments=(voicemail,) if voicemail else (),
        call=record,
    )


async def _tasks(db: Database) -> list[Task]:
    def work(session: Session) -> list[Task]:
        return list(session.scalars(select(Task).order_by(Task.id)))

    return await db.read(work)


async def test_missed_call_makes_one_call_back_due_within_the_sla(
    service: IngestService, db: Database, clock: ManualClock
) -> None:
    (manager,) = await add_managers(db, 1)
    result = await service.ingest(
        call_message("abc@host", CallDisposition.MISSED, manager_id=manager)
    )
    assert result.deal_created
    tasks = await _tasks(db)
    assert len(tasks) == 1  # the call back, not the default first task as well
    (task,) = tasks
    assert task.kind == TaskKind.CALL_BACK
    assert task.assignee_id == manager
    assert task.due_at == clock.now() + timedelta(minutes=15)
    assert task.deal_id == result.deal_id
    assert result.task_id == task.id

    def call(session: Session) -> Call:
        return session.scalars(select(Call)).one()

    row = await db.read(call)
    assert row.call_key == "sip:abc@host"
    assert row.disposition == "missed"
    assert row.duration_seconds == 0
    assert row.message_id == result.message_id
    assert row.contact_id == result.contact_id
    assert len(await emitted(db, "call.missed")) == 1
    messages = await db.read(lambda s: list(s.scalars(select(Message.text))))
    assert messages == ["Missed call from +79161234567, 0:00"]


async def test_the_same_call_id_is_stored_once(service: IngestService, db: Database) -> None:
    message = call_message("repeat@host", CallDisposition.BUSY)
    first = await service.ingest(message)
    again = await service.ingest(message)
    assert again.duplicate
    assert again.message_id == first.message_id
    assert await count_rows(db, Call) == 1
    assert await count_rows(db, Task) == 1


async def test_answered_call_is_logged_without_a_call_back(
    service: IngestService, db: Database
) -> None:
    (manager,) = await add_managers(db, 1)
    first = await service.ingest(inbound(phone("8 916 123-45-67")))
    before = await count_rows(db, Task)
    result = await service.ingest(
        call_message("ok@host", CallDisposition.ANSWERED, manager_id=manager)
    )
    assert result.contact_id == first.contact_id
    assert await count_rows(db, Task) == before
    row = await db.read(lambda s: s.scalars(select(Call)).one())
    assert (row.disposition, row.duration_seconds, row.manager_id) == ("answered", 65, manager)
    assert len(await emitted(db, "call.ended")) == 1


async def test_missed_call_of_a_client_with_an_open_deal_goes_on_that_deal(
    service: IngestService, db: Database
) -> None:
    first = await service.ingest(inbound(phone("+79161234567")))
    voicemail = Attachment("voicemail.wav", "audio/wav", 1234, storage_key="voicemail/ab/abcd")
    result = await service.ingest(
        call_message("vm@host", CallDisposition.VOICEMAIL, voicemail=voicemail)
    )
    assert not result.deal_created
    tasks = await _tasks(db)
    assert [t.kind for t in tasks] == ["call", "call_back"]
    assert tasks[1].deal_id == first.deal_id
    row = await db.read(lambda s: s.scalars(select(Call)).one())
    assert row.voicemail is not None
    assert row.voicemail["storage_key"] == "voicemail/ab/abcd"


async def test_a_missed_call_fires_the_call_missed_trigger(
    db: Database, clock: ManualClock
) -> None:
    automation = Automation(
        triggers=(Trigger(on="call_missed", funnel="consultation", to="contact_made"),)
    )
    service = IngestService(db, clock, IngestPolicy(), automation=automation)
    await service.ingest(inbound(phone("+79161234567")))
    await service.ingest(call_message("trig@host", CallDisposition.MISSED))

    def stage(session: Session) -> str:
        deal = session.scalars(select(Deal)).one()
        return str(session.scalar(select(Stage.code).where(Stage.id == deal.stage_id)))

    assert await db.read(stage) == "contact_made"


def test_summary_reads_well() -> None:
    record = call_message("s@h", CallDisposition.ANSWERED).call
    assert record is not None
    assert record.summary() == "Answered call from +79161234567, 1:05"
    outgoing = replace(record, direction=Direction.OUTBOUND, callee="+79160000000")
    assert outgoing.summary() == "Outgoing call to +79160000000, 1:05 (answered)"
    assert not outgoing.missed
