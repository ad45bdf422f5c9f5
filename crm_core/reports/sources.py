"""Where business comes from: leads, deals, won deals and revenue by channel,
``utm_source``, ``utm_campaign`` and source (the form or ad account), by first touch
and by last touch.

- *Leads*: touches in the period (each arrival of a client through a door).
- *Deals*: deals created in the period; *won* and *revenue*: deals won in the period.
- *First touch*: the touch that opened the deal; *last touch*: the client's latest touch
  at the deal's creation (for deals) or at its win (for won deals).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.orm import Session, aliased

from crm_core.enums import StageKind
from crm_core.models import Deal, Funnel, Stage, Touch
from crm_core.reports.common import Filters, Period, Scope, Table, real_contact

DIMENSIONS = ("channel", "utm_source", "utm_campaign", "source")
MODELS = ("first", "last")
_NONE = "(none)"


def _key(touch: Any, dimension: str) -> str:
    if touch is None or touch[0] is None:
        return _NONE
    channel, account, utm_source, utm_campaign = touch
    value = {
        "channel": channel,
        "utm_source": utm_source,
        "utm_campaign": utm_campaign,
        "source": f"{channel}:{account}",
    }[dimension]
    return value or _NONE


def sources(session: Session, period: Period, filters: Filters, scope: Scope) -> dict[str, Any]:
    counts: dict[tuple[str, str, str], dict[str, Any]] = defaultdict(
        lambda: {"leads": 0, "deals": 0, "won": 0, "revenue": Decimal(0)}
    )
    door = (Touch.channel, Touch.channel_account, Touch.utm_source, Touch.utm_campaign)
    leads = (
        select(*door, func.count())
        .where(
            Touch.occurred_at >= period.start,
            Touch.occurred_at < period.end,
            real_contact(Touch.contact_id),
        )
        .group_by(*door)
    )
    if filters.channel:
        leads = leads.where(Touch.channel == filters.channel)
    for *touch, many in session.execute(leads):
        for dimension in DIMENSIONS:
            for model in MODELS:  # a lead is its own first and last touch
                counts[(model, dimension, _key(touch, dimension))]["leads"] += int(many)
    for won in (False, True):
        for model, touch, many, amount in _deal_touches(session, period, filters, scope, won=won):
            for dimension in DIMENSIONS:
                cell = counts[(model, dimension, _key(touch, dimension))]
                if won:
                    cell["won"] += many
                    cell["revenue"] += amount
                else:
                    cell["deals"] += many
    out: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {d: [] for d in DIMENSIONS} for m in MODELS
    }
    for (model, dimension, value), cell in sorted(
        counts.items(), key=lambda item: (-item[1]["revenue"], -item[1]["leads"], item[0])
    ):
        out[model][dimension].append({"value": value, **cell, "revenue": str(cell["revenue"])})
    return {"period": period.as_json(), "filters": filters.as_json(), **out}


def _deal_touches(
    session: Session, period: Period, filters: Filters, scope: Scope, *, won: bool
) -> list[tuple[str, Any, int, Decimal]]:
    """The deals created (or won) in the period, counted per first touch and, apart, per
    last touch, with their amounts summed: (model, touch, deals, amount)."""
    moment = Deal.closed_at if won else Deal.created_at
    latest = (
        select(Touch.id)
        .where(Touch.contact_id == Deal.contact_id, Touch.occurred_at <= moment)
        .order_by(Touch.occurred_at.desc(), Touch.id.desc())
        .limit(1)
        .correlate(Deal)
        .scalar_subquery()
    )
    deals = select(Deal.source_touch_id.label("first_id"), Deal.amount).where(
        moment >= period.start,
        moment < period.end,
        scope.on(Deal.owner_id),
        real_contact(Deal.contact_id),
    )
    if won:
        deals = deals.join(
            Stage, and_(Stage.id == Deal.stage_id, Stage.kind == StageKind.WON.value)
        )
    if filters.funnel:
        deals = deals.join(Funnel, Funnel.id == Deal.funnel_id).where(Funnel.code == filters.funnel)
    # The last touch as a column, worked out once per deal in a materialized CTE that both
    # groupings read (in a join's condition, or pulled up into one, PostgreSQL ran the
    # subquery twice per deal; a plain subquery per grouping ran it again on SQLite).
    found = deals.add_columns(latest.label("last_id")).cte("found").prefix_with("MATERIALIZED")
    groupings = []
    for model, touch_id in (("first", found.c.first_id), ("last", found.c.last_id)):
        touch = aliased(Touch)
        door = (touch.channel, touch.channel_account, touch.utm_source, touch.utm_campaign)
        query = (
            select(literal(model), *door, func.count(), func.sum(found.c.amount))
            .select_from(found)
            .outerjoin(touch, touch.id == touch_id)
            .group_by(*door)
        )
        if filters.channel:
            first = aliased(Touch)
            query = query.join(first, first.id == found.c.first_id).where(
                first.channel == filters.channel
            )
        groupings.append(query)
    return [
        (model, door, int(many), Decimal(str(amount or 0)))
        for model, *door, many, amount in session.execute(union_all(*groupings))
    ]


def tables(report: Mapping[str, Any]) -> list[Table]:
    columns = ("model", "dimension", "value", "leads", "deals", "won", "revenue")
    rows = [
        (model, dimension, c["value"], c["leads"], c["deals"], c["won"], Decimal(c["revenue"]))
        for model in MODELS
        for dimension in DIMENSIONS
        for c in report[model][dimension]
    ]
    return [Table("sources", columns, rows)]
