"""Calls per manager over a period: inbound calls answered, outbound calls, missed calls,
inbound calls answered within N seconds of ringing (``answered_at - started_at``), talk
time (total and average per answered call), and the call backs done within their SLA.

A call counts in the period it started in, for the manager it belongs to
(:func:`crm_core.call_log.call_owner`: who took it, else its conversation's manager).
A call back counts in the period its task was made, for the task's assignee, and is in
time when it was done by its due time (as in the activity report).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from crm_core.call_log import call_owner
from crm_core.enums import CallDisposition, Direction, TaskKind
from crm_core.models import Call, ChannelAccount, Conversation, Manager, Task
from crm_core.reports.common import Filters, Period, Scope, Table, real_contact

COUNTS = (
    "calls_in",
    "calls_out",
    "calls_out_answered",
    "calls_missed",
    "answered_within",
    "talk_seconds",
    "callbacks",
    "callbacks_within_sla",
)


@dataclass(frozen=True, slots=True)
class Options:
    answer_within: int = 20  # seconds of ringing
    line: str | None = None  # one line (its channel account's key)


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 3) if whole else None


def _finish(row: dict[str, int]) -> dict[str, Any]:
    answered = row["calls_in"] + row["calls_out_answered"]
    return {
        **row,
        "answered_within_share": _share(row["answered_within"], row["calls_in"]),
        "average_talk_seconds": round(row["talk_seconds"] / answered, 1) if answered else None,
        "callbacks_within_sla_share": _share(row["callbacks_within_sla"], row["callbacks"]),
    }


def calls(
    session: Session, period: Period, filters: Filters, scope: Scope, options: Options
) -> dict[str, Any]:
    rows: dict[int | None, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    owner = call_owner()
    query = (
        select(
            owner,
            Call.direction,
            Call.disposition,
            Call.started_at,
            Call.answered_at,
            Call.duration_seconds,
        )
        .join(Conversation, Conversation.id == Call.conversation_id)
        .join(ChannelAccount, ChannelAccount.id == Call.channel_account_id)
        .where(
            Call.started_at >= period.start,
            Call.started_at < period.end,
            scope.on(owner),
            real_contact(Call.contact_id),
        )
    )
    if filters.channel:
        query = query.where(ChannelAccount.channel == filters.channel)
    if options.line:
        query = query.where(ChannelAccount.key == options.line)
    answered = CallDisposition.ANSWERED.value
    for manager_id, direction, disposition, started, picked_up, seconds in session.execute(query):
        row = rows[manager_id]
        row["talk_seconds"] += int(seconds or 0)
        if direction == Direction.OUTBOUND.value:
            row["calls_out"] += 1
            row["calls_out_answered"] += int(disposition == answered)
        elif disposition != answered:
            row["calls_missed"] += 1
        else:
            row["calls_in"] += 1
            if picked_up is not None and (picked_up - started).total_seconds() <= (
                options.answer_within
            ):
                row["answered_within"] += 1
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
            real_contact(Task.contact_id),
        )
        .group_by(Task.assignee_id)
    )
    for assignee_id, total, in_time in session.execute(callbacks):
        rows[assignee_id]["callbacks"] += int(total)
        rows[assignee_id]["callbacks_within_sla"] += int(in_time)
    names = dict(
        session.execute(
            select(Manager.id, Manager.name).where(Manager.id.in_([m for m in rows if m]))
        ).all()
    )
    out = []
    totals = dict.fromkeys(COUNTS, 0)
    for manager_id, row in sorted(rows.items(), key=lambda item: (item[0] is None, item[0] or 0)):
        if scope.managers is not None and manager_id not in scope.managers:
            continue
        for key in COUNTS:
            totals[key] += row[key]
        out.append(
            {"manager_id": manager_id, "manager": names.get(manager_id) if manager_id else None}
            | _finish(row)
        )
    return {
        "period": period.as_json(),
        "filters": {**filters.as_json(), "line": options.line},
        "answer_within_seconds": options.answer_within,
        "managers": out,
        "totals": _finish(totals),
    }


def tables(report: Mapping[str, Any]) -> list[Table]:
    columns = (
        "manager_id",
        "manager",
        "calls_in",
        "calls_out",
        "calls_out_answered",
        "calls_missed",
        f"answered_within_{report['answer_within_seconds']}s",
        "answered_within_share",
        "talk_seconds",
        "average_talk_seconds",
        "callbacks",
        "callbacks_within_sla",
        "callbacks_within_sla_share",
    )
    rows = [
        (
            m["manager_id"],
            m["manager"],
            m["calls_in"],
            m["calls_out"],
            m["calls_out_answered"],
            m["calls_missed"],
            m["answered_within"],
            m["answered_within_share"],
            m["talk_seconds"],
            m["average_talk_seconds"],
            m["callbacks"],
            m["callbacks_within_sla"],
            m["callbacks_within_sla_share"],
        )
        for m in report["managers"]
    ]
    return [Table("calls", columns, rows)]
