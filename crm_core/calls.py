"""Phone calls in the ingest transaction: the call record, and what the call settles.

:class:`crm_core.ingestion.Ingestion` calls :func:`record_call` after it stored the
message that describes the call. A call nobody answered gets a ``call_back`` task due
within the line's SLA, on the contact's open deal (the one this message opened, if
any), instead of the deal's default first task; the ``call_missed`` automation trigger
fires, and ``call.missed`` or ``call.ended`` is emitted. A caller who withheld the
number cannot be called back: the call is stored, without a call back.

An answered call is the conversation's first response (like a manager's reply: the SLA
and redirect timers find it answered), and the manager who answered owns the
conversation, and the deal and tasks this call's routing gave to someone else
(:func:`settle_answered`). A later record of a stored call only moves it forward: a
missed call that turns out answered becomes answered (:func:`record_repeat`).
"""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.automation import Automation
from crm_core.contracts import CallRecord
from crm_core.conversation_actions import announce_reassigned
from crm_core.enums import CallDisposition, Direction, TaskKind, TaskStatus
from crm_core.journal import Journal
from crm_core.models import Call, Contact, Conversation, Deal, Manager, Message, Task
from crm_core.snapshots import CallSnapshot, TaskSnapshot
from crm_core.tasks import create_task

WITHHELD = "Withheld number"  # what a call from a caller who hid the number is filed as


def record_call(
    session: Session,
    journal: Journal,
    automation: Automation,
    call: CallRecord,
    *,
    account_id: int,
    contact_id: int,
    conversation_id: int,
    message_id: int,
    deal_id: int | None,
    assignee_id: int | None,
    reachable: bool = True,
) -> int | None:
    """Store ``call``; answers the id of the call-back task it created, if any.
    ``reachable``: the caller left a number to call back."""
    manager_id = _manager(session, call.manager_id)
    row = Call(
        call_key=call.key,
        channel_account_id=account_id,
        contact_id=contact_id,
        conversation_id=conversation_id,
        message_id=message_id,
        direction=call.direction.value,
        caller=call.caller[:200],
        callee=call.callee[:200],
        manager_id=manager_id,
        started_at=call.started_at,
        answered_at=call.answered_at,
        ended_at=call.ended_at,
        duration_seconds=call.duration_seconds,
        disposition=call.disposition.value,
        voicemail=call.voicemail.as_json() if call.voicemail else None,
        recording=call.recording.as_json() if call.recording else None,
        created_at=journal.now,
    )
    session.add(row)
    session.flush()
    payload = _payload(row)
    task_id = None
    if call.missed:
        deal_id = deal_id or session.scalar(
            select(Deal.id)
            .where(Deal.contact_id == contact_id, Deal.is_open.is_(True))
            .order_by(Deal.id.desc())
            .limit(1)
        )
        if reachable:
            task_id = _call_back(
                session,
                journal,
                call,
                manager_id or assignee_id,
                contact_id,
                deal_id,
                conversation_id,
            )
            payload["task_id"] = task_id
        if deal_id is not None and automation.listens("call_missed"):
            automation.fire(session, journal, "call_missed", deal_id)
    elif call.disposition is CallDisposition.ANSWERED:
        settle_answered(session, journal, row)
    event = "call.missed" if call.missed else "call.ended"
    journal.recorded_and_emitted(event, "call", row.id, payload, about=CallSnapshot.of(row))
    return task_id


def record_repeat(session: Session, journal: Journal, call: CallRecord) -> None:
    """Another record of a stored call (the same ``key``): its status only moves
    forward. An answered call that was stored as missed (or busy, ...) becomes answered:
    its message says so, its call back is cancelled, and it settles the conversation
    like any answered call. Anything else (a missed call after the answered one, a
    repeat) changes nothing."""
    if call.disposition is not CallDisposition.ANSWERED:
        return
    row = session.scalar(select(Call).where(Call.call_key == call.key).with_for_update())
    if row is None or row.disposition == CallDisposition.ANSWERED.value:
        return
    before = row.disposition
    row.disposition = CallDisposition.ANSWERED.value
    row.answered_at = call.answered_at or row.answered_at or journal.now
    row.ended_at = max(filter(None, (row.ended_at, call.ended_at)), default=None)
    row.manager_id = _manager(session, call.manager_id) or row.manager_id
    row.duration_seconds = replace(
        call, answered_at=row.answered_at, ended_at=row.ended_at
    ).duration_seconds
    message = session.get(Message, row.message_id) if row.message_id is not None else None
    if message is not None:
        message.text = replace(
            call, caller=row.caller, answered_at=row.answered_at, ended_at=row.ended_at
        ).summary()
    for task in session.scalars(
        select(Task).where(
            Task.conversation_id == row.conversation_id,
            Task.kind == TaskKind.CALL_BACK.value,
            Task.status == TaskStatus.OPEN.value,
            Task.created_at == row.created_at,  # the call back this call's record made
        )
    ):
        task.status = TaskStatus.CANCELLED.value
        journal.recorded_and_emitted(
            "task.changed",
            "task",
            task.id,
            {
                "task_id": task.id,
                "status": [TaskStatus.OPEN.value, TaskStatus.CANCELLED.value],
                "reason": f"call {row.call_key} was answered",
            },
            event_key=journal.occurrence(task.id, "cancelled"),
            about=TaskSnapshot.of(task),
        )
    session.flush()
    settle_answered(session, journal, row)
    journal.recorded_and_emitted(
        "call.ended",
        "call",
        row.id,
        {**_payload(row), "previous_disposition": before},
        event_key=journal.occurrence(row.id, "answered"),
        about=CallSnapshot.of(row),
    )


def settle_answered(session: Session, journal: Journal, row: Call) -> None:
    """What an answered call settles: the conversation has its first response, and the
    manager who answered owns it; the deal this call opened, the tasks its routing made,
    and the owner of a contact the call created follow them (from whoever routing chose)."""
    conversation = session.get(Conversation, row.conversation_id, with_for_update=True)
    if conversation is None:
        return
    if conversation.first_response_at is None:
        conversation.first_response_at = row.answered_at or journal.now
    manager = session.get(Manager, row.manager_id) if row.manager_id is not None else None
    previous = conversation.assignee_id
    if manager is None or previous == manager.id or row.direction != Direction.INBOUND.value:
        session.flush()
        return
    conversation.assignee_id = manager.id
    if manager.team_id is not None:
        conversation.team_id = manager.team_id
    conversation.routing_reason = f"answered the phone call {row.call_key}"[:200]
    made = row.created_at  # deals and tasks made with the call's record
    for deal in session.scalars(
        select(Deal).where(
            Deal.conversation_id == conversation.id,
            Deal.is_open.is_(True),
            Deal.created_at == made,
            Deal.owner_id == previous if previous is not None else Deal.owner_id.is_(None),
        )
    ):
        deal.owner_id = manager.id
        journal.record("deal.reassigned", "deal", deal.id, {"owner_id": manager.id})
    session.execute(
        update(Task)
        .where(
            Task.conversation_id == conversation.id,
            Task.status == TaskStatus.OPEN.value,
            Task.created_at == made,
            Task.assignee_id == previous if previous is not None else Task.assignee_id.is_(None),
        )
        .values(assignee_id=manager.id)
    )
    contact = session.get(Contact, conversation.contact_id)
    if (
        contact is not None
        and contact.created_at == row.created_at
        and contact.owner_id
        in (
            previous,
            None,
        )
    ):
        contact.owner_id = manager.id
        journal.record("contact.updated", "contact", contact.id, {"owner_id": manager.id})
    session.flush()
    announce_reassigned(
        journal,
        conversation,
        previous,
        journal.occurrence(conversation.id, f"{previous}>{manager.id}"),
    )


def _manager(session: Session, manager_id: int | None) -> int | None:
    """The manager, if they still exist (a line's map naming one who is gone keeps the call)."""
    if manager_id is not None and session.get(Manager, manager_id) is None:
        return None
    return manager_id


def _payload(row: Call) -> dict[str, object]:
    return {
        "call_id": row.id,
        "call_key": row.call_key,
        "contact_id": row.contact_id,
        "conversation_id": row.conversation_id,
        "direction": row.direction,
        "caller": row.caller,
        "disposition": row.disposition,
        "manager_id": row.manager_id,
        "duration_seconds": row.duration_seconds,
    }


def _call_back(
    session: Session,
    journal: Journal,
    call: CallRecord,
    assignee_id: int | None,
    contact_id: int,
    deal_id: int | None,
    conversation_id: int,
) -> int:
    task = create_task(
        session,
        journal,
        kind=TaskKind.CALL_BACK,
        title=f"Call back {call.caller}"[:300],
        assignee_id=assignee_id,
        due_at=journal.now + call.callback_sla,
        contact_id=contact_id,
        deal_id=deal_id,
        conversation_id=conversation_id,
        context={"call_key": call.key},
    )
    return task.id
