"""ABC/XYZ: which clients (or products) carry the business, and how steadily.

- *ABC* ranks by the revenue won in the period (crm_core/report_maths.abc_classes):
  A up to 80 % of the cumulative revenue, B the next 15 %, C the rest.
- *XYZ* classes by the coefficient of variation of the monthly won revenue over the last
  ``months`` months up to the period's end (X up to ``x``, Y up to ``y``, Z above); a
  client who has not been a client for three of those months gets no class, and says so.
- The 3x3 matrix has counts and revenue per cell, and the list behind each cell.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.enums import StageKind
from crm_core.models import Contact, Deal, Funnel, Stage
from crm_core.report_maths import (
    XyzResult,
    abc_classes,
    abc_xyz_matrix,
    pareto_curve,
    xyz_class,
)
from crm_core.reports.common import Filters, Period, Scope, Table, real_contact

NO_PRODUCT = "(none)"


@dataclass(frozen=True, slots=True)
class Options:
    months: int = 6
    x: float = 0.10
    y: float = 0.25
    by: str = "client"  # or "product"


def _months_back(period: Period, months: int) -> tuple[list[str], datetime]:
    """The last ``months`` months up to the period's last day, and the first one's start."""
    year, month = period.last.year, period.last.month
    names = []
    for _ in range(months):
        names.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    names.reverse()
    first_year, first_month = (int(p) for p in names[0].split("-"))
    start = datetime(first_year, first_month, 1, tzinfo=period.zone)
    return names, start


def abc_xyz(
    session: Session, period: Period, filters: Filters, scope: Scope, options: Options
) -> dict[str, Any]:
    key = Deal.contact_id if options.by == "client" else func.coalesce(Deal.product, NO_PRODUCT)
    months, window_start = _months_back(period, options.months)
    won = (
        select(key, Deal.closed_at, Deal.amount)
        .join(Stage, Stage.id == Deal.stage_id)
        .where(
            Stage.kind == StageKind.WON.value,
            Deal.closed_at >= min(window_start, period.start),
            Deal.closed_at < period.end,
            scope.on(Deal.owner_id),
            real_contact(Deal.contact_id),
        )
    )
    if filters.funnel:
        won = won.join(Funnel, Funnel.id == Deal.funnel_id).where(Funnel.code == filters.funnel)
    revenue: dict[Any, Decimal] = defaultdict(Decimal)
    monthly: dict[Any, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for item, closed_at, amount in session.execute(won):
        if closed_at is None:
            continue
        value = Decimal(amount or 0)
        if closed_at >= period.start:
            revenue[item] += value
        if closed_at >= window_start:
            monthly[item][period.month_of(closed_at)] += value
    # the items with revenue in the period, as a subquery rather than a list of thousands
    earning = won.where(Deal.closed_at >= period.start).with_only_columns(
        key, maintain_column_froms=True
    )
    since = _client_since(session, options, earning, period) if revenue else {}
    classes = abc_classes(dict(revenue))
    steady: dict[Any, XyzResult] = {}
    for item in revenue:
        first = since.get(item)
        history = [m for m in months if first is None or m >= first]
        steady[item] = xyz_class(
            [monthly[item].get(m, Decimal(0)) for m in history], x=options.x, y=options.y
        )
    matrix = abc_xyz_matrix(classes, steady, dict(revenue))
    names = _names(session, options, earning, list(revenue))
    total = sum(revenue.values(), Decimal(0))
    items = []
    for point in pareto_curve(dict(revenue)):  # the order abc_classes ranks by
        item = point.key
        result = steady[item]
        items.append(
            {
                "key": item,
                "name": names.get(item),
                "revenue": str(revenue[item]),
                "abc": classes[item],
                "xyz": result.cls,
                "cv": None if result.cv is None else round(result.cv, 4),
                "xyz_note": result.reason,
                "rank": point.rank,
                "cumulative_share": round(point.cumulative_share, 4),
                "monthly": {m: str(monthly[item].get(m, Decimal(0))) for m in months},
            }
        )
    return {
        "period": period.as_json(),
        "filters": filters.as_json(),
        "by": options.by,
        "months": months,
        "thresholds": {"a": 0.8, "b": 0.95, "x": options.x, "y": options.y},
        "total_revenue": str(total),
        "items": items,
        "matrix": {
            abc: {
                xyz: {"count": cell.count, "revenue": str(cell.revenue), "keys": list(cell.keys)}
                for xyz, cell in row.items()
            }
            for abc, row in matrix.items()
        },
    }


def _client_since(session: Session, options: Options, items: Any, period: Period) -> dict[Any, str]:
    """The month each client (their first deal's) or product (its first won deal) began."""
    found: Any
    if options.by == "client":
        found = session.execute(
            select(Deal.contact_id, func.min(Deal.created_at))
            .where(Deal.contact_id.in_(items))
            .group_by(Deal.contact_id)
        ).all()
    else:
        product = func.coalesce(Deal.product, NO_PRODUCT)
        found = session.execute(
            select(product, func.min(Deal.closed_at))
            .join(Stage, Stage.id == Deal.stage_id)
            .where(Stage.kind == StageKind.WON.value, product.in_(items))
            .group_by(product)
        ).all()
    return {item: period.month_of(first) for item, first in found if first is not None}


def _names(
    session: Session, options: Options, earning: Any, items: list[Any]
) -> dict[Any, str | None]:
    if options.by != "client":
        return {item: item for item in items}
    return dict(
        session.execute(select(Contact.id, Contact.name).where(Contact.id.in_(earning))).all()
    )


def tables(report: Mapping[str, Any]) -> list[Table]:
    months = list(report["months"])
    columns = ("rank", "key", "name", "revenue", "abc", "xyz", "cv", "xyz_note", *months)
    rows = [
        (
            i["rank"],
            i["key"],
            i["name"],
            Decimal(i["revenue"]),
            i["abc"],
            i["xyz"],
            i["cv"],
            i["xyz_note"],
            *(Decimal(i["monthly"][m]) for m in months),
        )
        for i in report["items"]
    ]
    matrix = [
        (abc, xyz, cell["count"], Decimal(cell["revenue"]))
        for abc, row in report["matrix"].items()
        for xyz, cell in row.items()
    ]
    return [
        Table("abc_xyz", columns, rows),
        Table("matrix", ("abc", "xyz", "count", "revenue"), matrix),
    ]
