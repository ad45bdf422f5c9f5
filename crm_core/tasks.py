"""Tasks as a working tool: create, assign and reassign, reschedule, complete, reopen.

Every change is an audit entry (the history activity reports read) and an event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.enums import TaskKind, TaskStatus
from crm_core.journal import Journal
from crm_core.models import AuditEntry, Contact, Conversation, Deal, Manager, Task
from crm_core.snapshots import TaskSnapshot

if TYPE_CHECKING:  # automation creates tasks through this module
    from crm_core.automation import Automation


class TaskError(ValueError):
    """A change the task does not allow; the message says why."""


@dataclass(frozen=True, slots=True)
class TaskChange:
    """Fields to change; None leaves a field as it is."""

    title: str | None = None
    assignee_id: int | None = None
    due_at: datetime | None = None


def create_task(
    session: Session,
    journal: Journal,
    *,
    kind: TaskKind,
    title: str,
    assignee_id: int | None,
    due_at: datetime | None,
    author_id: int | None = None,
    contact_id: int | None = None,
    deal_id: int | None = None,
    conversation_id: int | None = None,
    context: Mapping[str, Any] | None = None,
) -> Task:
    """A new open task, announced as ``task.created``; ``context`` (what made it: a
    stage's automation, a missed call, an SLA breach) goes into the event as it is."""
    if not any((contact_id, deal_id, conversation_id)):
        raise TaskError("a task belongs to a contact, a deal or a conversation")
    for model, key in (
        (Contact, contact_id),
        (Deal, deal_id),
        (Conversation, conversation_id),
        (Manager, assignee_id),
    ):
        if key is not None and session.get(model, key) is None:
            raise TaskError(f"no {model.__tablename__.rstrip('s')} {key}")
    task = Task(
        kind=kind.value,
        title=title,
        status=TaskStatus.OPEN.value,
        assignee_id=assignee_id,
        author_id=author_id,
        due_at=due_at,
        contact_id=contact_id,
        deal_id=deal_id,
        conversation_id=conversation_id,
        created_at=journal.now,
    )
    session.add(task)
    session.flush()
    journal.recorded_and_emitted(
        "task.created",
        "task",
        task.id,
        {
            "task_id": task.id,
            "kind": task.kind,
            "assignee_id": assignee_id,
            "deal_id": deal_id,
            "due_at": due_at.isoformat() if due_at else None,
            **(context or {}),
        },
        about=TaskSnapshot.of(task),
    )
    return task


def change_task(session: Session, journal: Journal, task_id: int, change: TaskChange) -> Task:
    task = _task(session, task_id)
    changes: dict[str, Any] = {}
    if change.title is not None and change.title != task.title:
        changes["title"] = [task.title, change.title]
        task.title = change.title
    if change.assignee_id is not None and change.assignee_id != task.assignee_id:
        if session.get(Manager, change.assignee_id) is None:
            raise TaskError(f"no manager {change.assignee_id}")
        changes["assignee_id"] = [task.assignee_id, change.assignee_id]
        task.assignee_id = change.assignee_id
    if change.due_at is not None and change.due_at != task.due_at:
        changes["due_at"] = [
            task.due_at.isoformat() if task.due_at else None,
            change.due_at.isoformat(),
        ]
        task.due_at = change.due_at
        if change.due_at > journal.now:
            task.overdue_at = None  # announced again if the new time passes too
    if changes:
        action = "task.reassigned" if "assignee_id" in changes else "task.changed"
        journal.recorded_and_emitted(
            action,
            "task",
            task.id,
            {"task_id": task.id, **changes},
            event_key=journal.occurrence(task.id, action),
            about=TaskSnapshot.of(task),
        )
    return task


def complete_task(
    session: Session, journal: Journal, task_id: int, automation: Automation | None = None
) -> Task:
    """Done; the funnel automation may move the task's deal (a ``task_completed`` trigger)."""
    task = _task(session, task_id)
    if task.status == TaskStatus.DONE:
        return task
    task.status = TaskStatus.DONE.value
    task.done_at = journal.now
    journal.recorded_and_emitted(
        "task.completed",
        "task",
        task.id,
        {"task_id": task.id, "deal_id": task.deal_id, "assignee_id": task.assignee_id},
        event_key=journal.occurrence(task.id),
        about=TaskSnapshot.of(task),
    )
    if automation is not None and task.deal_id and automation.listens("task_completed"):
        session.flush()
        automation.fire(session, journal, "task_completed", task.deal_id, task_kind=task.kind)
    return task


def reopen_task(session: Session, journal: Journal, task_id: int) -> Task:
    task = _task(session, task_id)
    if task.status == TaskStatus.OPEN:
        return task
    task.status = TaskStatus.OPEN.value
    task.done_at = None
    journal.recorded_and_emitted(
        "task.reopened",
        "task",
        task.id,
        {"task_id": task.id},
        event_key=journal.occurrence(task.id),
        about=TaskSnapshot.of(task),
    )
    return task


def task_history(session: Session, task_id: int) -> list[dict[str, Any]]:
    return [
        {
            "at": entry.occurred_at.isoformat(),
            "actor": entry.actor,
            "action": entry.action,
            "changes": entry.changes,
        }
        for entry in session.scalars(
            select(AuditEntry)
            .where(AuditEntry.entity_type == "task", AuditEntry.entity_id == task_id)
            .order_by(AuditEntry.id)
        )
    ]


def _task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id, with_for_update=True)
    if task is None:
        raise LookupError(f"task {task_id} not found")
    return task
