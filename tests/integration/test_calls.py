"""Calls through the ingest transaction (SQLite and PostgreSQL): one record per Call-ID,
a call back for a missed call instead of the default first task, the automation trigger;
an answered call is a first response owned by whoever answered; a withheld number is a
record of its own; a later record of a call only moves it forward (answered wins)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.automation import Automation, Trigger
from crm_core.clock import ManualClock
from crm_core.contracts import Attachment, CallRecord, IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import CallDisposition, Channel, Direction, IdentityKind, TaskKind
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.merge import merge_contacts
from crm_core.models import (
    Call,
    Contact,
    ContactIdentity,
    Conversation,
    Deal,
    Message,
    Stage,
    Task,
    Timer,
)
from crm_core.timers import TimerRunner
from routing import RoutingConfig, load_config, route
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
    withheld: bool = False,
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
        identities=() if withheld else (IdentityRef(IdentityKind.PHONE, caller),),
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


def _sales(members: list[int]) -> RoutingConfig:
    return load_config(
        {
            "teams": {
                "Sales": {
                    "members": members,
                    "mode": "strictly",
                    "redirect_after_minutes": 1,
                    "first_response_sla_minutes": 1,
                }
            },
            "rules": [{"name": "default", "team": "Sales"}],
        }
    )


def _routed(db: Database, clock: ManualClock, config: RoutingConfig) -> IngestService:
    return IngestService(db, clock, IngestPolicy(), router=partial(route, config=config))


async def _conversation(db: Database, conversation_id: int) -> Conversation:
    found = await db.read(lambda s: s.get(Conversation, conversation_id))
    assert found is not None
    return found


async def test_an_answered_call_is_the_first_response_and_leaves_no_call_back(
    db: Database, clock: ManualClock
) -> None:
    anna, boris = await add_managers(db, 2)
    config = _sales([anna, boris])
    service = _routed(db, clock, config)
    result = await service.ingest(
        call_message("talk@host", CallDisposition.ANSWERED, manager_id=anna)
    )
    conversation = await _conversation(db, result.conversation_id)
    assert conversation.first_response_at == WHEN + timedelta(seconds=5)  # when anna picked up
    assert result.deal_created
    assert [t.kind for t in await _tasks(db)] == []  # no "call the client back"
    clock.advance(timedelta(minutes=5))  # past the redirect and the SLA
    runner = TimerRunner(db, clock, lambda: config)
    await runner.run_once()
    conversation = await _conversation(db, result.conversation_id)
    assert (conversation.assignee_id, conversation.sla_breached_at) == (anna, None)
    timers = await db.read(lambda s: list(s.scalars(select(Timer))))
    assert {t.kind for t in timers} == {"redirect", "first_response_sla"}
    assert {t.outcome for t in timers} == {"answered in time"}  # none acted, none pending
    assert not await emitted(db, "conversation.sla_breached")
    assert not await emitted(db, "conversation.reassigned")
    assert await count_rows(db, Task) == 0  # nor a breach task for the head of sales


async def test_the_manager_who_answers_owns_the_conversation_deal_and_tasks(
    db: Database, clock: ManualClock
) -> None:
    anna, boris = await add_managers(db, 2)
    config = load_config(
        {
            "teams": {"Sales": {"members": [anna, boris], "mode": "strictly"}},
            "rules": [
                {
                    "name": "default",
                    "team": "Sales",
                    "tasks": [{"kind": "meeting", "title": "Schedule the consultation"}],
                }
            ],
        }
    )
    service = _routed(db, clock, config)
    # Routing gives the call to anna; her phone rings out and boris answers.
    result = await service.ingest(
        call_message("boris@host", CallDisposition.ANSWERED, manager_id=boris)
    )
    assert result.assignee_id == boris
    conversation = await _conversation(db, result.conversation_id)
    assert conversation.assignee_id == boris
    assert "answered" in (conversation.routing_reason or "")
    deal = await db.read(lambda s: s.get(Deal, result.deal_id))
    assert deal is not None
    assert deal.owner_id == boris
    tasks = await _tasks(db)
    assert [(t.kind, t.assignee_id) for t in tasks] == [("meeting", boris)]  # the rule's task
    contact = await db.read(lambda s: s.get(Contact, result.contact_id))
    assert contact is not None
    assert contact.owner_id == boris
    (moved,) = await emitted(db, "conversation.reassigned")
    assert (moved["from_manager_id"], moved["assignee_id"]) == (anna, boris)
    row = await db.read(lambda s: s.scalars(select(Call)).one())
    assert row.manager_id == boris
    assert anna != boris


async def test_a_withheld_number_leaves_a_record_a_manager_can_merge(
    db: Database, clock: ManualClock
) -> None:
    (anna,) = await add_managers(db, 1)
    service = _routed(db, clock, _sales([anna]))
    known = await service.ingest(inbound(phone("+79161234567")))
    first = await service.ingest(
        call_message("anon1@host", CallDisposition.MISSED, caller="anonymous", withheld=True)
    )
    second = await service.ingest(
        call_message("anon2@host", CallDisposition.MISSED, caller="anonymous", withheld=True)
    )
    assert first.contact_created
    assert second.contact_created
    assert len({known.contact_id, first.contact_id, second.contact_id}) == 3  # one each
    assert first.assignee_id == anna  # in a manager's inbox, like any call
    identities = await db.read(lambda s: list(s.scalars(select(ContactIdentity.contact_id))))
    assert identities == [known.contact_id]  # nothing to dial: no identity
    texts = await db.read(
        lambda s: list(s.scalars(select(Message.text).where(Message.id == first.message_id)))
    )
    assert texts == ["Missed call from anonymous, 0:00"]
    calls = await db.read(lambda s: list(s.scalars(select(Call).order_by(Call.id))))
    assert [(c.caller, c.disposition) for c in calls] == [("anonymous", "missed")] * 2
    assert not [t for t in await _tasks(db) if t.kind == "call_back"]  # no number to call
    assert len(await emitted(db, "call.missed")) == 2

    def merge(session: Session) -> None:
        journal = Journal("test", clock.now())
        merge_contacts(session, known.contact_id, first.contact_id, "it was him", journal)
        journal.flush(session)

    await db.write(merge)
    moved = await db.read(
        lambda s: s.scalars(select(Call).where(Call.call_key == "sip:anon1@host")).one()
    )
    assert moved.contact_id == known.contact_id
    conversation = await _conversation(db, first.conversation_id)
    assert conversation.contact_id == known.contact_id


@pytest.mark.parametrize("order", ["missed first", "answered first"])
async def test_answered_wins_whatever_order_the_records_of_a_call_come_in(
    db: Database, clock: ManualClock, order: str
) -> None:
    anna, boris = await add_managers(db, 2)
    service = _routed(db, clock, _sales([anna, boris]))
    missed = call_message("late@host", CallDisposition.MISSED, manager_id=anna)
    answered = call_message("late@host", CallDisposition.ANSWERED, manager_id=boris)
    records = [missed, answered] if order == "missed first" else [answered, missed]
    first = await service.ingest(records[0])
    clock.advance(timedelta(seconds=30))
    again = await service.ingest(records[1])
    assert again.duplicate
    assert again.message_id == first.message_id
    row = await db.read(lambda s: s.scalars(select(Call)).one())
    assert (row.disposition, row.manager_id, row.duration_seconds) == ("answered", boris, 65)
    assert row.answered_at == WHEN + timedelta(seconds=5)
    text = await db.read(lambda s: s.scalars(select(Message.text)).one())
    assert text == "Answered call from +79161234567, 1:05"
    conversation = await _conversation(db, first.conversation_id)
    assert conversation.first_response_at == WHEN + timedelta(seconds=5)
    assert conversation.assignee_id == boris
    open_call_backs = [t for t in await _tasks(db) if t.kind == "call_back" and t.status == "open"]
    assert open_call_backs == []
    assert not [t for t in await _tasks(db) if t.status == "open" and t.assignee_id == anna]
    assert await count_rows(db, Call) == 1
    assert await count_rows(db, Message) == 1
    # A third record, missed again, changes nothing.
    await service.ingest(missed)
    row = await db.read(lambda s: s.scalars(select(Call)).one())
    assert row.disposition == "answered"
