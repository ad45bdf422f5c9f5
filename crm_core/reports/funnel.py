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
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.enums import StageKind
from crm_core.models import ChannelAccount, Conversation, Deal, DealStageChange, Funnel, Stage
from crm_core.report_maths import median
from crm_core.reports.common import (
    Filters,
    Period,
    ReportError,
    Scope,
    Table,
    epoch_micros,
    real_contact,
)

_PASSED_ALL = 1_000_000  # "furthest open position" of a won deal: past every open stage
FunnelStage = tuple[int, int]  # (funnel id, stage id)


@dataclass(frozen=True, slots=True)
class _Figures:
    """What the queries found, for every funnel at once (a few queries, not a few per funnel)."""

    cohort: Counter[int]  # funnel -> cohort deals with a stage history
    furthest: Counter[tuple[int, int]]  # (funnel, furthest open position) -> deals
    entered: Counter[FunnelStage]  # won and lost stages -> deals that entered them
    moves: Counter[FunnelStage]
    medians: dict[FunnelStage, float]  # seconds in the stage before the next move
    won: Counter[int]
    lost_reasons: dict[int, Counter[str]]


def funnel(session: Session, period: Period, filters: Filters, scope: Scope) -> dict[str, Any]:
    funnels = session.scalars(select(Funnel).order_by(Funnel.position)).all()
    if filters.funnel is not None:
        funnels = [f for f in funnels if f.code == filters.funnel]
        if not funnels:
            raise ReportError("funnel", f"no funnel {filters.funnel!r}")
    ids = [f.id for f in funnels]
    stages: dict[int, list[Stage]] = defaultdict(list)
    for stage in session.scalars(
        select(Stage).where(Stage.funnel_id.in_(ids)).order_by(Stage.funnel_id, Stage.position)
    ):
        stages[stage.funnel_id].append(stage)
    deals = _deals(filters, scope, ids)
    cohort = deals.where(Deal.created_at >= period.start, Deal.created_at < period.end)
    entries, furthest, entered, medians = _histories(session, cohort, stages)
    moves, won, lost_reasons = _moves_and_outcomes(session, period, deals)
    figures = _Figures(entries, furthest, entered, moves, medians, won, lost_reasons)
    return {
        "period": period.as_json(),
        "filters": filters.as_json(),
        "funnels": [_one(f, stages[f.id], figures) for f in funnels],
    }


def _deals(filters: Filters, scope: Scope, funnel_ids: list[int]) -> Any:
    """The funnels' deals in the scope: a select of (id, funnel_id) to add conditions to."""
    query = select(Deal.id, Deal.funnel_id).where(
        Deal.funnel_id.in_(funnel_ids), scope.on(Deal.owner_id), real_contact(Deal.contact_id)
    )
    if filters.channel:
        query = (
            query.join(Conversation, Conversation.id == Deal.conversation_id)
            .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
            .where(ChannelAccount.channel == filters.channel)
        )
    return query


def _one(row: Funnel, stages: list[Stage], figures: _Figures) -> dict[str, Any]:
    def reached(stage: Stage) -> int:
        if stage.kind == StageKind.OPEN.value:  # passed: the furthest is this one or later
            return sum(
                count
                for (funnel_id, position), count in figures.furthest.items()
                if funnel_id == row.id and position >= stage.position
            )
        return figures.entered[(row.id, stage.id)]

    open_stages = [s for s in stages if s.kind == StageKind.OPEN.value]
    out = []
    for index, stage in enumerate(stages):
        following = _next(open_stages, stages, stage)
        middle = figures.medians.get((row.id, stage.id))
        out.append(
            {
                "code": stage.code,
                "name_en": stage.name_en,
                "name_ru": stage.name_ru,
                "kind": stage.kind,
                "reached": reached(stage),
                "moved_in": figures.moves[(row.id, stage.id)],
                "conversion_to_next": _share(reached(following), reached(stage))
                if following is not None
                else None,
                "median_hours_in_stage": None if middle is None else round(middle / 3600, 2),
                "position": index,
            }
        )
    won = figures.won[row.id]
    reasons = sorted(
        figures.lost_reasons.get(row.id, Counter()).items(), key=lambda i: (-i[1], i[0])
    )
    lost = sum(count for _reason, count in reasons)
    return {
        "code": row.code,
        "cohort": figures.cohort[row.id],
        "stages": out,
        "won": won,
        "lost": lost,
        "win_rate": _share(won, won + lost),
        "lost_reasons": [{"reason": reason, "count": count} for reason, count in reasons],
    }


def _histories(
    session: Session, cohort: Any, stages: Mapping[int, list[Stage]]
) -> tuple[Counter[int], Counter[tuple[int, int]], Counter[FunnelStage], dict[FunnelStage, float]]:
    """The cohort's stage histories, read once in (deal, time) order as plain integers.

    Returns per funnel the cohort deals with a history; deals per (funnel, furthest open
    position entered, past every open one when a won stage was entered); deals per won or
    lost stage entered; and per (funnel, stage) the median seconds spent in the stage before
    the deal's next move.
    """
    change = DealStageChange
    deals = cohort.subquery()
    query = (
        select(
            change.deal_id,
            deals.c.funnel_id,
            change.to_stage_id,
            epoch_micros(session, change.changed_at),
        )
        .join(deals, deals.c.id == change.deal_id)
        .order_by(change.deal_id, change.changed_at, change.id)
    )
    histories: Counter[tuple[int, frozenset[int]]] = Counter()  # (funnel, stages) -> deals
    spans: dict[FunnelStage, list[float]] = defaultdict(list)
    deal: int | None = None
    funnel_id = stage_id = at = 0
    stage_ids: set[int] = set()
    for next_deal, next_funnel, next_stage, next_at in session.execute(query):
        if next_deal == deal:
            spans[(funnel_id, stage_id)].append((next_at - at) / 1_000_000)
        else:
            if deal is not None:
                histories[(funnel_id, frozenset(stage_ids))] += 1
            deal, stage_ids = next_deal, set()
        funnel_id, stage_id, at = next_funnel, next_stage, next_at
        stage_ids.add(stage_id)
    if deal is not None:
        histories[(funnel_id, frozenset(stage_ids))] += 1
    own = {s.id: s for found in stages.values() for s in found}
    cohorts: Counter[int] = Counter()
    furthest: Counter[tuple[int, int]] = Counter()
    entered: Counter[FunnelStage] = Counter()
    for (funnel_id, history), deals_count in histories.items():
        cohorts[funnel_id] += deals_count
        position = -1
        for stage_id in history:
            stage = own.get(stage_id)
            if stage is None or stage.funnel_id != funnel_id:
                continue  # another funnel's stage: counts nowhere here
            if stage.kind == StageKind.OPEN.value:
                position = max(position, stage.position)
            else:
                entered[(funnel_id, stage_id)] += deals_count
                if stage.kind == StageKind.WON.value:
                    position = _PASSED_ALL
        furthest[(funnel_id, position)] += deals_count
    medians = {key: value for key, spent in spans.items() if (value := median(spent)) is not None}
    return cohorts, furthest, entered, medians


def _moves_and_outcomes(
    session: Session, period: Period, deals: Any
) -> tuple[Counter[FunnelStage], Counter[int], dict[int, Counter[str]]]:
    """Moves made in the period into each stage by each funnel's deals in the scope; the
    deals won in the period per funnel; the lost ones per funnel and reason."""
    change = DealStageChange
    moved = (
        deals.with_only_columns(
            Deal.funnel_id, change.to_stage_id, func.count(), maintain_column_froms=True
        )
        .join(change, change.deal_id == Deal.id)
        .where(change.changed_at >= period.start, change.changed_at < period.end)
        .group_by(Deal.funnel_id, change.to_stage_id)
    )
    moves: Counter[FunnelStage] = Counter()
    for funnel_id, stage_id, count in session.execute(moved):
        moves[(funnel_id, stage_id)] += int(count)
    closed = (
        deals.with_only_columns(
            Deal.funnel_id, Stage.kind, Deal.lost_reason, func.count(), maintain_column_froms=True
        )
        .join(Stage, Stage.id == Deal.stage_id)
        .where(
            Deal.closed_at >= period.start,
            Deal.closed_at < period.end,
            Stage.kind.in_((StageKind.WON.value, StageKind.LOST.value)),
        )
        .group_by(Deal.funnel_id, Stage.kind, Deal.lost_reason)
    )
    won: Counter[int] = Counter()
    reasons: dict[int, Counter[str]] = defaultdict(Counter)
    for funnel_id, kind, reason, count in session.execute(closed):
        if kind == StageKind.WON.value:
            won[funnel_id] += int(count)
        else:
            reasons[funnel_id][reason or ""] += int(count)
    return moves, won, reasons


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
