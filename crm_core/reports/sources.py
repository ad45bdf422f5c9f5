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

from sqlalchemy import and_, select
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
    leads = select(
        Touch.channel, Touch.channel_account, Touch.utm_source, Touch.utm_campaign
    ).where(
        Touch.occurred_at >= period.start,
        Touch.occurred_at < period.end,
        real_contact(Touch.contact_id),
    )
    if filters.channel:
        leads = leads.where(Touch.channel == filters.channel)
    for touch in session.execute(leads):
        for dimension in DIMENSIONS:
            for model in MODELS:  # a lead is its own first and last touch
                counts[(model, dimension, _key(touch, dimension))]["leads"] += 1
    created = _deal_touches(session, period, filters, scope, won=False)
    for first, last, _amount in created:
        for dimension in DIMENSIONS:
            counts[("first", dimension, _key(first, dimension))]["deals"] += 1
            counts[("last", dimension, _key(last, dimension))]["deals"] += 1
    for first, last, amount in _deal_touches(session, period, filters, scope, won=True):
        for dimension in DIMENSIONS:
            for model, touch in (("first", first), ("last", last)):
                cell = counts[(model, dimension, _key(touch, dimension))]
                cell["won"] += 1
                cell["revenue"] += amount
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
) -> list[tuple[Any, Any, Decimal]]:
    first = aliased(Touch)
    last = aliased(Touch)
    moment = Deal.closed_at if won else Deal.created_at
    latest = (
        select(Touch.id)
        .where(Touch.contact_id == Deal.contact_id, Touch.occurred_at <= moment)
        .order_by(Touch.occurred_at.desc(), Touch.id.desc())
        .limit(1)
        .correlate(Deal)
        .scalar_subquery()
    )
    query = (
        select(
            first.channel,
            first.channel_account,
            first.utm_source,
            first.utm_campaign,
            last.channel,
            last.channel_account,
            last.utm_source,
            last.utm_campaign,
            Deal.amount,
        )
        .select_from(Deal)
        .outerjoin(first, first.id == Deal.source_touch_id)
        .outerjoin(last, last.id == latest)
        .where(
            moment >= period.start,
            moment < period.end,
            scope.on(Deal.owner_id),
            real_contact(Deal.contact_id),
        )
    )
    if won:
        query = query.join(
            Stage, and_(Stage.id == Deal.stage_id, Stage.kind == StageKind.WON.value)
        )
    if filters.funnel:
        query = query.join(Funnel, Funnel.id == Deal.funnel_id).where(Funnel.code == filters.funnel)
    if filters.channel:
        query = query.where(first.channel == filters.channel)
    return [(row[0:4], row[4:8], Decimal(row[8] or 0)) for row in session.execute(query).all()]


def tables(report: Mapping[str, Any]) -> list[Table]:
    columns = ("model", "dimension", "value", "leads", "deals", "won", "revenue")
    rows = [
        (model, dimension, c["value"], c["leads"], c["deals"], c["won"], Decimal(c["revenue"]))
        for model in MODELS
        for dimension in DIMENSIONS
        for c in report[model][dimension]
    ]
    return [Table("sources", columns, rows)]
