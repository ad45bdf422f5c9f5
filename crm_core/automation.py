"""Funnel automation ("robots"): what runs when a deal enters a stage, and what moves it.

Per stage, actions run when a deal enters it: create a task (for the deal's owner or
the head of sales, due in minutes), send a message template to the client in the
deal's conversation, notify the head of sales. Triggers move a deal when the client
replies, when a task of a given kind is completed, or when a call was missed.
Everything runs in the transaction of the change that caused it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.deals import move_deal
from crm_core.enums import TaskKind
from crm_core.journal import Journal
from crm_core.models import Deal, Funnel, Stage
from crm_core.people import head_of_sales
from crm_core.replies import ReplyError, queue_reply
from crm_core.snapshots import DealSnapshot
from crm_core.tasks import create_task

Event = Literal["client_replied", "task_completed", "call_missed"]
_EVENTS = ("client_replied", "task_completed", "call_missed")


class AutomationError(ValueError):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where


@dataclass(frozen=True, slots=True)
class TaskAction:
    kind: TaskKind
    title: str
    due_minutes: int
    assignee: Literal["owner", "head"] = "owner"


@dataclass(frozen=True, slots=True)
class MessageAction:
    text: str


@dataclass(frozen=True, slots=True)
class NotifyHead:
    text: str


Action = TaskAction | MessageAction | NotifyHead


@dataclass(frozen=True, slots=True)
class Trigger:
    on: Event
    funnel: str
    to: str
    from_stages: frozenset[str] = frozenset()  # empty: from any open stage
    task_kind: str | None = None


@dataclass(frozen=True, slots=True)
class Automation:
    stages: Mapping[tuple[str, str], tuple[Action, ...]] = field(default_factory=dict)
    triggers: tuple[Trigger, ...] = ()

    def listens(self, event: Event) -> bool:
        return any(trigger.on == event for trigger in self.triggers)

    def fire(
        self,
        session: Session,
        journal: Journal,
        event: Event,
        deal_id: int,
        task_kind: str | None = None,
    ) -> bool:
        """Move the deal if a trigger of ``event`` applies to it; True when it moved."""
        row = session.execute(
            select(Funnel.code, Stage.code, Stage.kind)
            .join(Deal, Deal.funnel_id == Funnel.id)
            .join(Stage, Stage.id == Deal.stage_id)
            .where(Deal.id == deal_id)
        ).first()
        if row is None or row[2] != "open":
            return False
        funnel, stage = row[0], row[1]
        for trigger in self.triggers:
            if (
                trigger.on == event
                and trigger.funnel == funnel
                and trigger.to != stage
                and (not trigger.from_stages or stage in trigger.from_stages)
                and (trigger.task_kind is None or trigger.task_kind == task_kind)
            ):
                move_deal(session, deal_id, trigger.to, journal, on_enter=self.on_enter)
                return True
        return False

    def on_enter(self, session: Session, journal: Journal, deal: Deal, stage: Stage) -> None:
        funnel = session.get(Funnel, deal.funnel_id)
        assert funnel is not None
        for action in self.stages.get((funnel.code, stage.code), ()):
            _run(session, journal, deal, stage, action)


def _run(session: Session, journal: Journal, deal: Deal, stage: Stage, action: Action) -> None:
    if isinstance(action, TaskAction):
        assignee = deal.owner_id if action.assignee == "owner" else head_of_sales(session)
        create_task(
            session,
            journal,
            kind=action.kind,
            title=action.title,
            assignee_id=assignee,
            due_at=journal.now + timedelta(minutes=action.due_minutes),
            contact_id=deal.contact_id,
            deal_id=deal.id,
            conversation_id=deal.conversation_id,
            context={"automation": stage.code},
        )
    elif isinstance(action, MessageAction):
        if deal.conversation_id is not None:
            try:
                queue_reply(session, journal, deal.conversation_id, action.text)
            except ReplyError:
                journal.record(
                    "automation.message_skipped",
                    "deal",
                    deal.id,
                    {"stage": stage.code, "reason": "the client cannot be reached"},
                )
    else:
        payload = {
            "deal_id": deal.id,
            "stage": stage.code,
            "text": action.text,
            "head_id": head_of_sales(session),
        }
        journal.recorded_and_emitted(
            "deal.head_notified",
            "deal",
            deal.id,
            payload,
            event_key=journal.occurrence(deal.id, stage.id),
            about=DealSnapshot.of(session, deal, stage.code),
        )


def load_automation(data: Mapping[str, Any] | None) -> Automation:
    """The ``automation`` section of the routing file; errors name the place."""
    if not data:
        return Automation()
    data = _mapping(data, "automation")
    stages: dict[tuple[str, str], tuple[Action, ...]] = {}
    for i, item in enumerate(_list(data.get("stages", []), "automation.stages")):
        where = f"automation.stages[{i}]"
        spec = _mapping(item, where)
        key = (_text(spec, "funnel", where), _text(spec, "stage", where))
        stages[key] = tuple(
            _action(a, f"{where}.actions[{j}]")
            for j, a in enumerate(_list(spec.get("actions", []), where))
        )
    triggers = []
    for i, item in enumerate(_list(data.get("triggers", []), "automation.triggers")):
        where = f"automation.triggers[{i}]"
        spec = _mapping(item, where)
        on = spec.get("on")
        task_kind = spec.get("task_kind")
        if task_kind is not None and not isinstance(task_kind, str):
            raise AutomationError(f"{where}.task_kind", "a string is needed")
        if on not in _EVENTS:
            raise AutomationError(f"{where}.on", "one of " + ", ".join(_EVENTS))
        triggers.append(
            Trigger(
                on=on,
                funnel=_text(spec, "funnel", where),
                to=_text(spec, "to", where),
                from_stages=frozenset(_texts(spec.get("from", []), f"{where}.from")),
                task_kind=task_kind,
            )
        )
    return Automation(stages=stages, triggers=tuple(triggers))


def _action(spec: Any, where: str) -> Action:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise AutomationError(where, "one of {task: ...}, {message: ...}, {notify_head: ...}")
    ((name, value),) = spec.items()
    if name == "task":
        if not isinstance(value, Mapping):
            raise AutomationError(where, "task needs kind, title, due_minutes")
        try:
            kind = TaskKind(value.get("kind", "follow_up"))
        except ValueError:
            raise AutomationError(f"{where}.task.kind", "an unknown task kind") from None
        assignee = value.get("assignee", "owner")
        if assignee not in ("owner", "head"):
            raise AutomationError(f"{where}.task.assignee", "owner or head")
        return TaskAction(
            kind,
            _text(value, "title", f"{where}.task"),
            int(value.get("due_minutes", 60)),
            assignee,
        )
    if name == "message" and isinstance(value, str) and value:
        return MessageAction(value)
    if name == "notify_head" and isinstance(value, str):
        return NotifyHead(value)
    raise AutomationError(where, f"unknown action {name!r}")


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise AutomationError(where, "expected a mapping")
    return value


def _list(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise AutomationError(where, "expected a list")
    return value


def _texts(value: Any, where: str) -> list[str]:
    items = _list(value, where)
    if not all(isinstance(item, str) for item in items):
        raise AutomationError(where, "a list of stage codes is needed")
    return list(items)


def _text(spec: Mapping[str, Any], key: str, where: str) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value:
        raise AutomationError(f"{where}.{key}", "a non-empty string is needed")
    return value
