"""Manager activity over a period: conversations received and answered, first response
times (median and 90th percentile, in working time by the conversation's team's hours
and in clock time), replies per channel, calls, call-backs within their SLA, tasks done
and overdue, deals won and lost with their amounts.

A conversation counts for the manager it is assigned to, in the period it was opened.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from crm_core.enums import StageKind, TaskKind, TaskStatus
from crm_core.models import (
    Call,
    ChannelAccount,
    Conversation,
    Deal,
    Funnel,
    Manager,
    Message,
    Stage,
    Task,
    Team,
)
from crm_core.report_maths import median, percentile
from crm_core.reports.common import Filters, Period, Scope, Table, epoch_micros, real_contact
from routing.hours import WorkingHours, WorkingTimeMeter

HoursOf = Callable[[str | None], WorkingHours]  # a team's name -> its working hours


def _minutes(values: list[float]) -> dict[str, float | None]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value / 60, 1)

    return {"median": rounded(median(values)), "p90": rounded(percentile(values, 90))}


def activity(
    session: Session,
    period: Period,
    filters: Filters,
    scope: Scope,
    hours_of: HoursOf,
    now: datetime,
) -> dict[str, Any]:
    rows: dict[int | None, dict[str, Any]] = defaultdict(_empty)
    _conversations(session, period, filters, scope, hours_of, rows)
    _replies(session, period, filters, scope, rows)
    _calls(session, period, filters, scope, rows)
    _tasks(session, period, scope, now, rows)
    _deals(session, period, filters, scope, rows)
    managers = dict(
        session.execute(
            select(Manager.id, Manager.name).where(Manager.id.in_([m for m in rows if m]))
        ).all()
    )
    out = []
    for manager_id, row in sorted(rows.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        if scope.managers is not None and manager_id not in scope.managers:
            continue
        work, clock = sorted(row.pop("_work")), sorted(row.pop("_clock"))  # sorted once
        out.append(
            {
                "manager_id": manager_id,
                "manager": managers.get(manager_id) if manager_id else None,
                **row,
                "first_response_work_minutes": _minutes(work),
                "first_response_clock_minutes": _minutes(clock),
                "won_amount": str(row["won_amount"]),
                "lost_amount": str(row["lost_amount"]),
            }
        )
    return {"period": period.as_json(), "filters": filters.as_json(), "managers": out}


def _empty() -> dict[str, Any]:
    return {
        "conversations_received": 0,
        "conversations_answered": 0,
        "_work": [],
        "_clock": [],
        "replies_by_channel": {},
        "calls_in": 0,
        "calls_out": 0,
        "calls_missed": 0,
        "callbacks": 0,
        "callbacks_within_sla": 0,
        "tasks_done": 0,
        "tasks_overdue": 0,
        "deals_won": 0,
        "won_amount": Decimal(0),
        "deals_lost": 0,
        "lost_amount": Decimal(0),
    }


def _conversations(
    session: Session,
    period: Period,
    filters: Filters,
    scope: Scope,
    hours_of: HoursOf,
    rows: dict[int | None, dict[str, Any]],
) -> None:
    # the moments as integers (microseconds since the epoch): a year holds ~300,000
    # conversations, and parsing two datetimes for each costs more than the rest
    query = select(
        Conversation.assignee_id,
        Conversation.team_id,
        epoch_micros(session, Conversation.opened_at),
        epoch_micros(session, Conversation.first_response_at),
    ).where(
        Conversation.opened_at >= period.start,
        Conversation.opened_at < period.end,
        scope.on(Conversation.assignee_id),
        real_contact(Conversation.contact_id),
    )
    if filters.channel:
        query = query.join(
            ChannelAccount, ChannelAccount.id == Conversation.channel_account_id
        ).where(ChannelAccount.channel == filters.channel)
    teams: dict[int | None, str | None] = dict(session.execute(select(Team.id, Team.name)).all())
    received: Counter[int | None] = Counter()
    answered: dict[tuple[int | None, int | None], list[tuple[int, int]]] = defaultdict(list)
    for manager_id, team_id, opened, first_response in session.execute(query):
        received[manager_id] += 1
        if first_response is not None and first_response >= opened:
            answered[(manager_id, team_id)].append((opened, first_response))
    for manager_id, count in received.items():
        rows[manager_id]["conversations_received"] += count
    meters: dict[int | None, WorkingTimeMeter] = {}
    for (manager_id, team_id), spans in answered.items():
        row = rows[manager_id]
        row["conversations_answered"] += len(spans)
        row["_clock"].extend((end - start) / 1_000_000 for start, end in spans)
        meter = meters.get(team_id)
        if meter is None:
            meter = meters[team_id] = hours_of(teams.get(team_id)).meter()
        row["_work"].extend(micros / 1_000_000 for micros in meter.working_micros_each(spans))


def _replies(
    session: Session,
    period: Period,
    filters: Filters,
    scope: Scope,
    rows: dict[int | None, dict[str, Any]],
) -> None:
    # per channel account, then summed per channel here: a join per message costs more
    # than the handful of accounts
    channels: dict[int, str] = dict(
        session.execute(select(ChannelAccount.id, ChannelAccount.channel)).all()
    )
    query = (
        select(Message.author_manager_id, Message.channel_account_id, func.count())
        .where(
            Message.direction == "out",
            Message.author_manager_id.is_not(None),
            Message.created_at >= period.start,
            Message.created_at < period.end,
            scope.on(Message.author_manager_id),
        )
        .group_by(Message.author_manager_id, Message.channel_account_id)
    )
    if filters.channel:
        query = query.where(
            Message.channel_account_id.in_(
                select(ChannelAccount.id).where(ChannelAccount.channel == filters.channel)
            )
        )
    replies: dict[int | None, Counter[str]] = defaultdict(Counter)
    for manager_id, account_id, count in session.execute(query):
        replies[manager_id][channels[account_id]] += int(count)
    for manager_id, counts in replies.items():
        rows[manager_id]["replies_by_channel"].update(sorted(counts.items()))


def _calls(
    session: Session,
    period: Period,
    filters: Filters,
    scope: Scope,
    rows: dict[int | None, dict[str, Any]],
) -> None:
    # a missed call is the conversation's manager's (nobody talked in it)
    who = func.coalesce(Call.manager_id, Conversation.assignee_id)
    query = (
        select(who, Call.direction, Call.disposition, func.count())
        .join(Conversation, Conversation.id == Call.conversation_id)
        .where(
            Call.started_at >= period.start,
            Call.started_at < period.end,
            scope.on(who),
            real_contact(Call.contact_id),
        )
        .group_by(who, Call.direction, Call.disposition)
    )
    for manager_id, direction, disposition, count in session.execute(query):
        row = rows[manager_id]
        if direction == "out":
            row["calls_out"] += int(count)
        elif disposition == "answered":
            row["calls_in"] += int(count)
        else:
            row["calls_missed"] += int(count)
    callbacks = (
        select(
            Task.assignee_id,
            func.count(),
            func.count().filter(and_(Task.done_at.is_not(None), Task.done_at <= Task.due_at)),
        )
        .where(
            Task.kind == TaskKind.CALL_BACK.value,
            Task.created_at >= period.start,
            Task.created_at < period.end,
            scope.on(Task.assignee_id),
        )
        .group_by(Task.assignee_id)
    )
    for assignee_id, total, in_time in session.execute(callbacks):
        rows[assignee_id]["callbacks"] += int(total)
        rows[assignee_id]["callbacks_within_sla"] += int(in_time)


def _tasks(
    session: Session,
    period: Period,
    scope: Scope,
    now: datetime,
    rows: dict[int | None, dict[str, Any]],
) -> None:
    done = (
        select(Task.assignee_id, func.count())
        .where(
            Task.status == TaskStatus.DONE.value,
            Task.done_at >= period.start,
            Task.done_at < period.end,
            scope.on(Task.assignee_id),
        )
        .group_by(Task.assignee_id)
    )
    for manager_id, count in session.execute(done):
        rows[manager_id]["tasks_done"] += int(count)
    # overdue within the period: due in it, and not done by then (nor by the due time)
    until = min(period.end, now)
    overdue = (
        select(Task.assignee_id, func.count())
        .where(
            Task.due_at >= period.start,
            Task.due_at < until,
            Task.status != TaskStatus.CANCELLED.value,
            or_(Task.done_at.is_(None), Task.done_at > Task.due_at),
            scope.on(Task.assignee_id),
        )
        .group_by(Task.assignee_id)
    )
    for manager_id, count in session.execute(overdue):
        rows[manager_id]["tasks_overdue"] += int(count)


def _deals(
    session: Session,
    period: Period,
    filters: Filters,
    scope: Scope,
    rows: dict[int | None, dict[str, Any]],
) -> None:
    query = (
        select(Deal.owner_id, Stage.kind, func.count(), func.coalesce(func.sum(Deal.amount), 0))
        .join(Stage, Stage.id == Deal.stage_id)
        .join(Funnel, Funnel.id == Deal.funnel_id)
        .where(
            Stage.kind.in_((StageKind.WON.value, StageKind.LOST.value)),
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            scope.on(Deal.owner_id),
            real_contact(Deal.contact_id),
        )
        .group_by(Deal.owner_id, Stage.kind)
    )
    if filters.funnel:
        query = query.where(Funnel.code == filters.funnel)
    for manager_id, kind, count, amount in session.execute(query):
        outcome = "won" if kind == StageKind.WON.value else "lost"
        rows[manager_id][f"deals_{outcome}"] += int(count)
        rows[manager_id][f"{outcome}_amount"] += Decimal(str(amount))


def tables(report: Mapping[str, Any]) -> list[Table]:
    columns = (
        "manager_id",
        "manager",
        "conversations_received",
        "conversations_answered",
        "first_response_work_median_min",
        "first_response_work_p90_min",
        "first_response_clock_median_min",
        "first_response_clock_p90_min",
        "replies",
        "calls_in",
        "calls_out",
        "calls_missed",
        "callbacks",
        "callbacks_within_sla",
        "tasks_done",
        "tasks_overdue",
        "deals_won",
        "won_amount",
        "deals_lost",
        "lost_amount",
    )
    rows = [
        (
            m["manager_id"],
            m["manager"],
            m["conversations_received"],
            m["conversations_answered"],
            m["first_response_work_minutes"]["median"],
            m["first_response_work_minutes"]["p90"],
            m["first_response_clock_minutes"]["median"],
            m["first_response_clock_minutes"]["p90"],
            sum(m["replies_by_channel"].values()),
            m["calls_in"],
            m["calls_out"],
            m["calls_missed"],
            m["callbacks"],
            m["callbacks_within_sla"],
            m["tasks_done"],
            m["tasks_overdue"],
            m["deals_won"],
            Decimal(m["won_amount"]),
            m["deals_lost"],
            Decimal(m["lost_amount"]),
        )
        for m in report["managers"]
    ]
    return [Table("activity", columns, rows)]
