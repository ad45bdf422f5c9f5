"""Timers of conversations, and the runner that fires each exactly once.

* **redirect**: a conversation its manager has not answered within the team's
  redirect timeout passes to the next manager of the queue (wrapping to its start);
* **first-response SLA**: an unanswered conversation past the team's SLA is marked
  breached and the head of sales gets a task;
* **task overdue**: an open task past its due time is announced (``task.overdue``).

A timer is a row; the runner marks it fired in the same transaction that acts on it
(``UPDATE ... WHERE fired_at IS NULL``), so a restart, a second runner or a retry can
neither lose nor repeat it. Time comes from the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core import tables as t
from crm_core.clock import Clock
from crm_core.conversation_actions import announce_reassigned, move_open_tasks
from crm_core.db import Database
from crm_core.enums import ConversationStatus, TaskKind, TaskStatus
from crm_core.fastsql import Prepared, Raw
from crm_core.journal import Journal
from crm_core.load_locks import assignment_stamp, decide_locked
from crm_core.models import Conversation, Manager, Task, Timer
from crm_core.people import head_of_sales
from crm_core.snapshots import ConversationSnapshot, TaskSnapshot
from crm_core.tasks import create_task
from routing import Candidate, RoutingConfig, redirect
from routing.queues import pick

log = logging.getLogger(__name__)
ACTOR = "system:timers"
REDIRECT = "redirect"
SLA = "first_response_sla"
QUEUE = "queue"  # a waiting conversation: try to assign it (at opening, or again later)
QUEUE_RETRY_MINUTES = 5
# A task's columns in the order of crm_core.snapshots.TaskSnapshot (task.overdue).
_TASK_COLUMNS = (
    Task.id,
    Task.kind,
    Task.title,
    Task.status,
    Task.assignee_id,
    Task.author_id,
    Task.due_at,
    Task.done_at,
    Task.overdue_at,
    Task.contact_id,
    Task.deal_id,
    Task.conversation_id,
    Task.created_at,
)

_INSERT = Prepared.insert(
    t.timers,
    [
        "kind",
        "conversation_id",
        "manager_id",
        "team",
        "minutes",
        "due_at",
        "fired_at",
        "outcome",
        "created_at",
    ],
)


def schedule(
    raw: Raw,
    kind: str,
    conversation_id: int,
    manager_id: int | None,
    team: str | None,
    minutes: int,
    now: datetime,
    due_at: datetime | None = None,
) -> None:
    """A timer ``minutes`` from ``now`` (or at ``due_at``)."""
    _INSERT.execute(
        raw,
        {
            "kind": kind,
            "conversation_id": conversation_id,
            "manager_id": manager_id,
            "team": team,
            "minutes": minutes,
            "due_at": due_at or now + timedelta(minutes=minutes),
            "fired_at": None,
            "outcome": None,
            "created_at": now,
        },
    )


class TimerRunner:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        routing: Callable[[], RoutingConfig],
        poll_seconds: float = 5.0,
    ) -> None:
        """``routing`` gives the configuration in force (it can change while the hub runs)."""
        self._db = db
        self._clock = clock
        self._routing = routing
        self._poll = poll_seconds

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("timer pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(self._poll)

    async def run_once(self) -> int:
        """Fire what is due; returns how many timers and overdue tasks acted."""
        now = self._clock.now()
        due = await self._db.read(
            lambda s: list(
                s.scalars(
                    select(Timer.id)
                    .where(Timer.fired_at.is_(None), Timer.due_at <= now)
                    .order_by(Timer.due_at, Timer.id)
                    .limit(500)
                )
            )
        )
        fired = 0
        for timer_id in due:
            fired += await self._db.write(partial(self._fire, timer_id=timer_id))
        return fired + await self._db.write(self._overdue_tasks)

    def _fire(self, session: Session, timer_id: int) -> int:
        now = self._clock.now()
        claimed = session.execute(
            update(Timer).where(Timer.id == timer_id, Timer.fired_at.is_(None)).values(fired_at=now)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return 0  # another runner took it
        timer = session.get(Timer, timer_id)
        assert timer is not None
        conversation = session.get(Conversation, timer.conversation_id, with_for_update=True)
        assert conversation is not None
        journal = Journal(ACTOR, now)
        if conversation.first_response_at is not None:
            timer.outcome = "answered in time"
        elif conversation.status == ConversationStatus.CLOSED:
            timer.outcome = "closed"
        elif timer.kind == QUEUE:
            timer.outcome = self._assign_waiting(session, timer, conversation, journal)
        elif timer.kind == REDIRECT:
            timer.outcome = self._redirect(session, timer, conversation, journal)
        else:
            timer.outcome = self._breach(session, conversation, journal)
        journal.flush(session)
        return 1

    def _redirect(
        self, session: Session, timer: Timer, conversation: Conversation, journal: Journal
    ) -> str:
        if conversation.assignee_id != timer.manager_id:
            return "already moved"
        team = self._routing().teams.get(timer.team or "")
        if team is None:
            return f"team {timer.team!r} is no longer configured"
        raw = Raw.of(session)
        current = conversation.assignee_id

        def decide(candidates: Sequence[Candidate]) -> tuple[int | None, tuple[int, ...]]:
            return redirect(team, current, candidates), team.queue(candidates)

        following, candidates = decide_locked(raw, decide)
        # Try again after the same timeout, whoever has it then.
        schedule(
            raw,
            REDIRECT,
            conversation.id,
            following or conversation.assignee_id,
            timer.team,
            timer.minutes,
            journal.now,
        )
        if following is None:
            return "nobody else available"
        previous = conversation.assignee_id
        conversation.assignee_id = following
        conversation.routing_reason = (
            f"redirected: manager {previous} did not answer within {timer.minutes} min"
        )
        move_open_tasks(session, conversation.id, previous, following)
        stamp = assignment_stamp(journal.now, candidates, team.queue(candidates))
        session.execute(
            update(Manager).where(Manager.id == following).values(last_assigned_at=stamp)
        )
        session.flush()
        announce_reassigned(journal, conversation, previous, f"{conversation.id}:{timer.id}")
        return f"redirected from {previous} to {following}"

    def _assign_waiting(
        self, session: Session, timer: Timer, conversation: Conversation, journal: Journal
    ) -> str:
        if conversation.assignee_id is not None:
            return "already assigned"
        team = self._routing().teams.get(timer.team or "")
        if team is None:
            return f"team {timer.team!r} is no longer configured"
        raw = Raw.of(session)
        if not team.hours.is_open(journal.now):
            opening = team.hours.next_opening(journal.now)
            schedule(raw, QUEUE, conversation.id, None, team.name, 0, journal.now, due_at=opening)
            return "still closed"

        def decide(
            candidates: Sequence[Candidate],
        ) -> tuple[tuple[int | None, tuple[int, ...]], tuple[int, ...]]:
            queue = team.queue(candidates)
            return pick(team.mode, queue, candidates), queue

        (chosen, offered), candidates = decide_locked(raw, decide)
        if chosen is None and offered:
            return f"offered to all {len(offered)} available"
        if chosen is None:
            schedule(raw, QUEUE, conversation.id, None, team.name, QUEUE_RETRY_MINUTES, journal.now)
            return "nobody available yet"
        conversation.assignee_id = chosen
        conversation.routing_reason = f"taken from the queue of team {team.name!r}"
        move_open_tasks(session, conversation.id, None, chosen)
        stamp = assignment_stamp(journal.now, candidates, team.queue(candidates))
        session.execute(update(Manager).where(Manager.id == chosen).values(last_assigned_at=stamp))
        if team.redirect_after_minutes:
            schedule(
                raw,
                REDIRECT,
                conversation.id,
                chosen,
                team.name,
                team.redirect_after_minutes,
                journal.now,
            )
        session.flush()
        announce_reassigned(journal, conversation, None, f"{conversation.id}:{timer.id}")
        return f"assigned to {chosen}"

    def _breach(self, session: Session, conversation: Conversation, journal: Journal) -> str:
        conversation.sla_breached_at = journal.now
        head = head_of_sales(session)
        task = create_task(
            session,
            journal,
            kind=TaskKind.FOLLOW_UP,
            title=f"First response overdue: conversation {conversation.id}",
            assignee_id=head,
            due_at=journal.now,
            contact_id=conversation.contact_id,
            conversation_id=conversation.id,
            context={"conversation_id": conversation.id},
        )
        journal.recorded_and_emitted(
            "conversation.sla_breached",
            "conversation",
            conversation.id,
            {
                "conversation_id": conversation.id,
                "assignee_id": conversation.assignee_id,
                "task_id": task.id,
            },
            about=ConversationSnapshot.of(conversation),
        )
        return f"breached; task {task.id} for the head of sales"

    def _overdue_tasks(self, session: Session) -> int:
        now = self._clock.now()
        rows = session.execute(
            update(Task)
            .where(Task.status == TaskStatus.OPEN, Task.due_at <= now, Task.overdue_at.is_(None))
            .values(overdue_at=now)
            .returning(*_TASK_COLUMNS)
        ).all()
        journal = Journal(ACTOR, now)
        for row in rows:
            task = TaskSnapshot(*list(row))
            task_id, assignee, deal_id, conversation_id = (
                task.id,
                task.assignee_id,
                task.deal_id,
                task.conversation_id,
            )
            journal.recorded_and_emitted(
                "task.overdue",
                "task",
                task_id,
                {
                    "task_id": task_id,
                    "assignee_id": assignee,
                    "deal_id": deal_id,
                    "conversation_id": conversation_id,
                },
                event_key=journal.occurrence(task_id),  # overdue again after a new due time
                about=task,
            )
        journal.flush(session)
        return len(rows)
