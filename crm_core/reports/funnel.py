"""The funnel: per funnel, how many deals reached each stage and the conversion from one
stage to the next, for the deals created in the period (the cohort) and for the moves
made in the period; the median time in each stage; the lost reasons; the win rate.

"Reached" a stage: the deal entered it (its stage history), or a later open stage of the
funnel's order (a deal moved from "new" to "presentation" passed the stages between);
a won deal passed every open stage. Won and lost count as reached only when entered.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.enums import StageKind
from crm_core.models import ChannelAccount, Conversation, Deal, DealStageChange, Funnel, Stage
from crm_core.report_maths import median
from crm_core.reports.common import Filters, Period, ReportError, Scope, Table, real_contact


def funnel(session: Session, period: Period, filters: Filters, scope: Scope) -> dict[str, Any]:
    funnels = session.scalars(select(Funnel).order_by(Funnel.position)).all()
    if filters.funnel is not None:
        funnels = [f for f in funnels if f.code == filters.funnel]
        if not funnels:
            raise ReportError("funnel", f"no funnel {filters.funnel!r}")
    return {
        "period": period.as_json(),
        "filters": filters.as_json(),
        "funnels": [_one(session, period, filters, scope, f) for f in funnels],
    }


def _deals(filters: Filters, scope: Scope, funnel_id: int) -> Any:
    query = select(Deal.id).where(
        Deal.funnel_id == funnel_id, scope.on(Deal.owner_id), real_contact(Deal.contact_id)
    )
    if filters.channel:
        query = (
            query.join(Conversation, Conversation.id == Deal.conversation_id)
            .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
            .where(ChannelAccount.channel == filters.channel)
        )
    return query


def _one(
    session: Session, period: Period, filters: Filters, scope: Scope, row: Funnel
) -> dict[str, Any]:
    stages = session.scalars(
        select(Stage).where(Stage.funnel_id == row.id).order_by(Stage.position)
    ).all()
    deals = _deals(filters, scope, row.id)
    cohort = deals.where(Deal.created_at >= period.start, Deal.created_at < period.end)
    changes = session.execute(
        select(DealStageChange.deal_id, DealStageChange.to_stage_id, DealStageChange.changed_at)
        .where(DealStageChange.deal_id.in_(cohort))
        .order_by(DealStageChange.deal_id, DealStageChange.changed_at, DealStageChange.id)
    ).all()
    entered: dict[int, set[int]] = defaultdict(set)  # deal -> stages entered
    durations: dict[int, list[float]] = defaultdict(list)  # stage -> seconds spent in it
    previous: tuple[int, int, datetime] | None = None
    for deal_id, stage_id, at in changes:
        entered[deal_id].add(stage_id)
        if previous is not None and previous[0] == deal_id:
            durations[previous[1]].append((at - previous[2]).total_seconds())
        previous = (deal_id, stage_id, at)
    kinds = {s.id: s.kind for s in stages}
    order = {s.id: s.position for s in stages}
    open_stages = [s for s in stages if s.kind == StageKind.OPEN.value]
    last_open = max((s.position for s in open_stages), default=-1)
    reached: Counter[int] = Counter()
    for stage_ids in entered.values():
        # a won deal went through every open stage; a lost one as far as it had got
        passed_all = any(kinds.get(s) == StageKind.WON.value for s in stage_ids)
        furthest = (
            last_open
            if passed_all
            else max(
                (order[s] for s in stage_ids if kinds.get(s) == StageKind.OPEN.value), default=-1
            )
        )
        for stage in stages:
            if stage.id in stage_ids or (
                stage.kind == StageKind.OPEN.value and stage.position <= furthest
            ):
                reached[stage.id] += 1
    moves = Counter(
        session.scalars(
            select(DealStageChange.to_stage_id).where(
                DealStageChange.deal_id.in_(deals),
                DealStageChange.changed_at >= period.start,
                DealStageChange.changed_at < period.end,
            )
        ).all()
    )
    closed = session.execute(
        select(Stage.kind, Deal.lost_reason)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(
            Deal.id.in_(deals),
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            Stage.kind.in_((StageKind.WON.value, StageKind.LOST.value)),
        )
    ).all()
    won = sum(1 for kind, _ in closed if kind == StageKind.WON.value)
    lost_reasons = Counter(reason or "" for kind, reason in closed if kind == StageKind.LOST.value)
    shown = []
    for index, stage in enumerate(stages):
        following = _next(open_stages, list(stages), stage)
        spent = durations.get(stage.id, [])
        middle = median(spent)
        shown.append(
            {
                "code": stage.code,
                "name_en": stage.name_en,
                "name_ru": stage.name_ru,
                "kind": stage.kind,
                "reached": reached[stage.id],
                "moved_in": moves[stage.id],
                "conversion_to_next": _share(reached[following.id], reached[stage.id])
                if following is not None
                else None,
                "median_hours_in_stage": None if middle is None else round(middle / 3600, 2),
                "position": index,
            }
        )
    lost = sum(lost_reasons.values())
    return {
        "code": row.code,
        "cohort": len(entered),
        "stages": shown,
        "won": won,
        "lost": lost,
        "win_rate": _share(won, won + lost),
        "lost_reasons": [
            {"reason": reason, "count": count} for reason, count in lost_reasons.most_common()
        ],
    }


def _next(open_stages: list[Stage], stages: list[Stage], stage: Stage) -> Stage | None:
    """The stage a deal in ``stage`` goes on to: the next open one, or won after the last."""
    if stage.kind != StageKind.OPEN.value:
        return None
    later = [s for s in open_stages if s.position > stage.position]
    if later:
        return later[0]
    return next((s for s in stages if s.kind == StageKind.WON.value), None)


def _share(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def tables(report: Mapping[str, Any]) -> list[Table]:
    columns = (
        "funnel",
        "stage",
        "kind",
        "reached",
        "moved_in",
        "conversion_to_next",
        "median_hours_in_stage",
    )
    rows = [
        (
            f["code"],
            s["code"],
            s["kind"],
            s["reached"],
            s["moved_in"],
            s["conversion_to_next"],
            s["median_hours_in_stage"],
        )
        for f in report["funnels"]
        for s in f["stages"]
    ]
    reasons = [
        (f["code"], r["reason"], r["count"]) for f in report["funnels"] for r in f["lost_reasons"]
    ]
    summary = [
        (f["code"], f["cohort"], f["won"], f["lost"], f["win_rate"]) for f in report["funnels"]
    ]
    return [
        Table("funnel", columns, rows),
        Table("outcomes", ("funnel", "cohort", "won", "lost", "win_rate"), summary),
        Table("lost_reasons", ("funnel", "reason", "count"), reasons),
    ]
