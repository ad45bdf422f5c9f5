"""Redirect and SLA timers fire exactly once, across restarts, driven by the clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Conversation, Task, Timer
from crm_core.people import create_manager
from crm_core.replies import queue_reply
from crm_core.timers import TimerRunner
from routing import load_config, route
from tests.factories import WHEN, add_managers, emitted, inbound, telegram


def _config(members: list[int]) -> dict[str, object]:
    return {
        "teams": {
            "Sales": {
                "members": members,
                "mode": "strictly",
                "redirect_after_minutes": 10,
                "first_response_sla_minutes": 30,
            }
        },
        "rules": [{"name": "default", "team": "Sales"}],
    }


async def _head(db: Database) -> int:
    def work(session: Session) -> int:
        journal = Journal("test", WHEN)
        head = create_manager(
            session, journal, email="head@example.test", name="Head", role=Role.HEAD
        )
        journal.flush(session)
        return head.id

    return await db.write(work)


async def _topics(db: Database, event: str) -> int:
    return len(await emitted(db, event))


async def test_redirects_walk_the_queue_and_the_sla_breaches_once_across_restarts(
    database_url: str, clock: ManualClock
) -> None:
    start = clock.now()
    db = Database(database_url)
    members = await add_managers(db, 3)
    head = await _head(db)
    config = load_config(_config(members))
    service = IngestService(db, clock, IngestPolicy(), router=partial(route, config=config))
    first = await service.ingest(inbound(telegram("1"), channel="telegram", account="bot"))
    assert first.assignee_id == members[0]
    await db.dispose()  # the hub stops ...

    assignees = []
    for _step in range(3):
        clock.advance(timedelta(minutes=10))
        db = Database(database_url)  # ... and starts again, with a new runner
        runner = TimerRunner(db, clock, lambda: config)
        await runner.run_once()
        await runner.run_once()  # a second pass finds nothing left to fire
        conversation = await db.read(lambda s: s.get(Conversation, first.conversation_id))
        assert conversation is not None
        assignees.append(conversation.assignee_id)
        await db.dispose()
    # Each redirect once; after the last manager the queue starts again.
    assert assignees == [members[1], members[2], members[0]]

    db = Database(database_url)
    runner = TimerRunner(db, clock, lambda: config)
    assert await _topics(db, "conversation.reassigned") == 3
    breached = await db.read(lambda s: s.get(Conversation, first.conversation_id))
    assert breached is not None
    assert breached.sla_breached_at == start + timedelta(minutes=30)
    head_tasks = await db.read(
        lambda s: list(s.scalars(select(Task).where(Task.assignee_id == head)))
    )
    assert len(head_tasks) == 1
    assert head_tasks[0].title.startswith("First response overdue")
    assert await _topics(db, "conversation.sla_breached") == 1
    # The conversation's own open task followed it from manager to manager.
    deal_task = await db.read(lambda s: s.get(Task, first.task_id))
    assert deal_task is not None
    assert deal_task.assignee_id == members[0]
    assert await _topics(db, "task.overdue") >= 1
    overdue_before = await _topics(db, "task.overdue")
    await runner.run_once()
    assert await _topics(db, "task.overdue") == overdue_before
    fired = await db.read(
        lambda s: list(s.scalars(select(Timer).where(Timer.fired_at.is_not(None))))
    )
    assert len({t.id for t in fired}) == len(fired) == 4  # 3 redirects + 1 SLA
    await db.dispose()


async def test_an_answered_conversation_is_not_redirected(db: Database, clock: ManualClock) -> None:
    members = await add_managers(db, 2)
    config = load_config(_config(members))
    service = IngestService(db, clock, IngestPolicy(), router=partial(route, config=config))
    result = await service.ingest(inbound(telegram("2"), channel="telegram", account="bot"))
    clock.advance(timedelta(minutes=5))

    def answer(session: Session) -> None:
        journal = Journal("test", clock.now())
        queue_reply(
            session, journal, result.conversation_id, "Здравствуйте!", author_manager_id=members[0]
        )
        journal.flush(session)

    await db.write(answer)
    clock.advance(timedelta(minutes=60))
    await TimerRunner(db, clock, lambda: config).run_once()
    conversation = await db.read(lambda s: s.get(Conversation, result.conversation_id))
    assert conversation is not None
    assert conversation.assignee_id == members[0]
    assert conversation.sla_breached_at is None
    outcomes = await db.read(
        lambda s: sorted(o for o in s.scalars(select(Timer.outcome)) if o is not None)
    )
    assert outcomes == ["answered in time", "answered in time"]


async def test_a_conversation_waiting_for_the_opening_is_assigned_then(
    db: Database, clock: ManualClock
) -> None:
    members = await add_managers(db, 1)
    config = load_config(
        {
            "teams": {
                "Sales": {
                    "members": members,
                    "hours": {"timezone": "Europe/Moscow", "weekly": {"mon": ["09:00-18:00"]}},
                }
            },
            "rules": [{"name": "default", "team": "Sales"}],
        }
    )
    service = IngestService(db, clock, IngestPolicy(), router=partial(route, config=config))
    clock.set(clock.now().replace(hour=20))  # Monday 23:00 in Moscow: closed
    result = await service.ingest(
        replace(inbound(telegram("3"), channel="telegram", account="bot"), occurred_at=clock.now())
    )
    assert result.assignee_id is None
    runner = TimerRunner(db, clock, lambda: config)
    clock.advance(timedelta(hours=8))  # Tuesday: still closed (only Mondays)
    await runner.run_once()
    conversation = await db.read(lambda s: s.get(Conversation, result.conversation_id))
    assert conversation is not None
    assert conversation.assignee_id is None
    clock.advance(timedelta(days=6, hours=3))  # the next Monday, 10:00 in Moscow
    await runner.run_once()
    await runner.run_once()
    conversation = await db.read(lambda s: s.get(Conversation, result.conversation_id))
    assert conversation is not None
    assert conversation.assignee_id == members[0]
    task = await db.read(lambda s: s.get(Task, result.task_id))
    assert task is not None
    assert task.assignee_id == members[0]
    assert await _topics(db, "conversation.reassigned") == 1
