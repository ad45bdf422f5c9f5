"""Funnel automation: stage actions and the triggers that move deals."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.automation import Automation, AutomationError, load_automation
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.deals import move_deal
from crm_core.enums import TaskKind
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Deal, Message, OutboxMessage, Stage, Task
from crm_core.tasks import complete_task, create_task
from tests.factories import add_managers, event_names, inbound, telegram

ROBOTS: dict[str, Any] = {
    "stages": [
        {
            "funnel": "consultation",
            "stage": "proposal_sent",
            "actions": [
                {
                    "task": {
                        "kind": "follow_up",
                        "title": "Ask about the proposal",
                        "due_minutes": 1440,
                    }
                },
                {"message": "Мы отправили вам коммерческое предложение."},
                {"notify_head": "A proposal went out"},
            ],
        },
    ],
    "triggers": [
        {"on": "client_replied", "funnel": "consultation", "from": ["new"], "to": "contact_made"},
        {
            "on": "task_completed",
            "funnel": "consultation",
            "task_kind": "needs",
            "to": "needs_gathered",
        },
    ],
}


async def _stage(db: Database, deal_id: int) -> str:
    def work(session: Session) -> str:
        deal = session.get(Deal, deal_id)
        assert deal is not None
        stage = session.get(Stage, deal.stage_id)
        assert stage is not None
        return stage.code

    return await db.read(work)


async def test_robots_move_deals_and_act_on_entry(db: Database, clock: ManualClock) -> None:
    await add_managers(db, 1)
    automation = load_automation(ROBOTS)
    service = IngestService(db, clock, IngestPolicy(), automation=automation)
    first = await service.ingest(inbound(telegram("8"), channel="telegram", account="bot"))
    assert first.deal_id is not None
    deal_id = first.deal_id
    assert await _stage(db, deal_id) == "new"
    await service.ingest(inbound(telegram("8"), channel="telegram", account="bot"))
    assert await _stage(db, deal_id) == "contact_made"
    await service.ingest(inbound(telegram("8"), channel="telegram", account="bot"))
    assert await _stage(db, deal_id) == "contact_made"  # only from "new"

    def needs_done(session: Session) -> None:
        journal = Journal("test", clock.now())
        task = create_task(
            session,
            journal,
            kind=TaskKind.NEEDS,
            title="Gather needs",
            assignee_id=None,
            due_at=None,
            deal_id=deal_id,
        )
        complete_task(session, journal, task.id, automation)
        journal.flush(session)

    await db.write(needs_done)
    assert await _stage(db, deal_id) == "needs_gathered"

    def proposal(session: Session) -> None:
        journal = Journal("test", clock.now())
        move_deal(session, deal_id, "proposal_sent", journal, on_enter=automation.on_enter)
        journal.flush(session)

    await db.write(proposal)
    titles = await db.read(
        lambda s: [
            t.title
            for t in s.scalars(select(Task).where(Task.deal_id == deal_id).order_by(Task.id))
        ]
    )
    assert titles[-1] == "Ask about the proposal"
    outbound = await db.read(
        lambda s: [m.text for m in s.scalars(select(Message).where(Message.direction == "out"))]
    )
    assert outbound == ["Мы отправили вам коммерческое предложение."]
    assert "deal.head_notified" in await event_names(db)
    topics = await db.read(lambda s: list(s.scalars(select(OutboxMessage.topic))))
    assert topics.count("send.telegram") == 1


def test_no_automation_listens_to_nothing() -> None:
    assert not Automation().listens("client_replied")


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"triggers": [{"on": "sneezed", "funnel": "f", "to": "s"}]}, "automation.triggers[0].on"),
        ({"triggers": [{"on": "call_missed", "funnel": "f"}]}, "automation.triggers[0].to"),
        (
            {"stages": [{"funnel": "f", "stage": "s", "actions": [{"dance": 1}]}]},
            "automation.stages[0].actions[0]",
        ),
        (
            {
                "stages": [
                    {
                        "funnel": "f",
                        "stage": "s",
                        "actions": [{"task": {"kind": "nap", "title": "t"}}],
                    }
                ]
            },
            "automation.stages[0].actions[0].task.kind",
        ),
    ],
)
def test_bad_automation_names_the_place(data: dict[str, Any], where: str) -> None:
    with pytest.raises(AutomationError) as caught:
        load_automation(data)
    assert caught.value.where == where
