"""Phone calls in the ingest transaction: the call record, and the call back it may need.

:class:`crm_core.ingestion.Ingestion` calls :func:`record_call` after it stored the
message that describes the call. A call nobody answered gets a ``call_back`` task due
within the line's SLA, on the contact's open deal (the one this message opened, if
any), instead of the deal's default first task; the ``call_missed`` automation trigger
fires, and ``call.missed`` or ``call.ended`` is emitted.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.automation import Automation
from crm_core.contracts import CallRecord
from crm_core.enums import TaskKind
from crm_core.journal import Journal
from crm_core.models import Call, Deal, Manager
from crm_core.tasks import create_task


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
) -> int | None:
    """Store ``call``; answers the id of the call-back task it created, if any."""
    manager_id = call.manager_id
    if manager_id is not None and session.get(Manager, manager_id) is None:
        manager_id = None  # a line's map naming a manager who is gone: keep the call
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
        created_at=journal.now,
    )
    session.add(row)
    session.flush()
    payload = {
        "call_id": row.id,
        "call_key": row.call_key,
        "contact_id": contact_id,
        "conversation_id": conversation_id,
        "direction": row.direction,
        "caller": row.caller,
        "disposition": row.disposition,
        "manager_id": manager_id,
        "duration_seconds": row.duration_seconds,
    }
    task_id = None
    if call.missed:
        deal_id = deal_id or session.scalar(
            select(Deal.id)
            .where(Deal.contact_id == contact_id, Deal.is_open.is_(True))
            .order_by(Deal.id.desc())
            .limit(1)
        )
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
    event = "call.missed" if call.missed else "call.ended"
    journal.recorded_and_emitted(event, "call", row.id, payload)
    return task_id


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
