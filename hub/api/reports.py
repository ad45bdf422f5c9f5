"""``GET /api/v1/reports/{activity,funnel,sources,abc-xyz,calls}``: the head of sales' reports,
as JSON, or exported (``format=csv`` the main table, ``format=xlsx`` every table, one
sheet each), over a period in the company's time zone, with the viewer's scope.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from crm_core.access import Viewer
from crm_core.reports import abc_xyz, activity, funnel, sources
from crm_core.reports import calls as call_stats
from crm_core.reports.common import Filters, Period, ReportError, Table, scope_of
from hub.api.auth import VIEWER
from hub.api.errors import ApiError, field_error
from hub.api.ids import query_id
from hub.keys import CLOCK, DATABASE, ROUTING, SETTINGS
from routing.hours import ALWAYS_OPEN, WorkingHours

routes = web.RouteTableDef()
MAX_DAYS = 3 * 366
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Made = tuple[dict[str, Any], list[Table]]


def _period(request: web.Request) -> Period:
    zone = request.app[SETTINGS].timezone
    today = request.app[CLOCK].now().astimezone(Period(date.min, date.min, zone).zone).date()
    first = _date(request, "from", today.replace(day=1))
    last = _date(request, "to", today)
    if last < first:
        raise field_error("to", "the period ends before it starts")
    if (last - first).days > MAX_DAYS:
        raise field_error("to", f"a period is at most {MAX_DAYS} days")
    return Period(first, last, zone)


def _date(request: web.Request, name: str, default: date) -> date:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name}: a date like 2026-03-01") from None
    if not date(1970, 1, 1) <= day <= date(9998, 12, 31):  # its bounds stay datetimes
        raise ApiError(400, "invalid_query", f"{name}: a date from 1970-01-01 to 9998-12-31")
    return day


def _filters(request: web.Request) -> Filters:
    query = request.query
    return Filters(
        team=query.get("team") or None,
        manager_id=query_id(request, "manager_id"),
        funnel=query.get("funnel") or None,
        channel=query.get("channel") or None,
    )


def _hours_of(request: web.Request) -> Callable[[str | None], WorkingHours]:
    teams = request.app[ROUTING].config.teams

    def hours(team: str | None) -> WorkingHours:
        found = teams.get(team) if team else None
        return found.hours if found is not None else ALWAYS_OPEN

    return hours


async def _answer(
    request: web.Request, name: str, make: Callable[[Session, Viewer, Period, Filters], Made]
) -> web.StreamResponse:
    viewer = request[VIEWER]
    period = _period(request)
    filters = _filters(request)
    wanted = request.query.get("format", "json")
    if wanted not in ("json", "csv", "xlsx"):
        raise ApiError(400, "invalid_query", "format: one of json, csv, xlsx")
    try:
        report, tables = await request.app[DATABASE].read(
            lambda s: make(s, viewer, period, filters)
        )
    except ReportError as exc:
        raise ApiError(
            400, "invalid_query", str(exc), errors=[{"field": exc.field, "message": exc.problem}]
        ) from None
    stem = f"{name}-{period.first.isoformat()}-{period.last.isoformat()}"
    if wanted == "csv":
        return _download(_csv(tables[0]), "text/csv; charset=utf-8", f"{stem}.csv")
    if wanted == "xlsx":
        return _download(_xlsx(tables), XLSX, f"{stem}.xlsx")
    return web.json_response(report)


def _download(body: bytes, content_type: str, filename: str) -> web.Response:
    return web.Response(
        body=body,
        headers={
            "Content-Type": content_type,
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


def _cell(value: Any) -> Any:
    """A value as a spreadsheet holds it; text that a spreadsheet would run as a formula
    (``=``, ``+``, ``-``, ``@`` first) is kept as text with a leading apostrophe."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(table: Table) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode()  # a BOM: spreadsheets then read UTF-8


def _xlsx(tables: list[Table]) -> bytes:
    from openpyxl import Workbook  # only an XLSX export pays for importing it

    book = Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for table in tables:
        sheet = book.create_sheet(table.name[:31])
        sheet.append(list(table.columns))
        for row in table.rows:
            sheet.append([_cell(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@routes.get("/api/v1/reports/activity")
async def activity_report(request: web.Request) -> web.StreamResponse:
    hours_of = _hours_of(request)
    now = request.app[CLOCK].now()

    def make(session: Session, viewer: Viewer, period: Period, filters: Filters) -> Made:
        scope = scope_of(session, viewer, filters)
        report = activity.activity(session, period, filters, scope, hours_of, now)
        return report, activity.tables(report)

    return await _answer(request, "activity", make)


@routes.get("/api/v1/reports/funnel")
async def funnel_report(request: web.Request) -> web.StreamResponse:
    def make(session: Session, viewer: Viewer, period: Period, filters: Filters) -> Made:
        report = funnel.funnel(session, period, filters, scope_of(session, viewer, filters))
        return report, funnel.tables(report)

    return await _answer(request, "funnel", make)


@routes.get("/api/v1/reports/sources")
async def sources_report(request: web.Request) -> web.StreamResponse:
    def make(session: Session, viewer: Viewer, period: Period, filters: Filters) -> Made:
        report = sources.sources(session, period, filters, scope_of(session, viewer, filters))
        return report, sources.tables(report)

    return await _answer(request, "sources", make)


@routes.get("/api/v1/reports/abc-xyz")
async def abc_xyz_report(request: web.Request) -> web.StreamResponse:
    options = abc_xyz.Options(
        months=_int(request, "months", 6, 2, 36),
        x=_share(request, "x", 0.10),
        y=_share(request, "y", 0.25),
        by=request.query.get("by", "client"),
    )
    if options.by not in ("client", "product"):
        raise field_error("by", "client or product")
    if options.y < options.x:
        raise field_error("y", "the Y threshold is at least the X threshold")

    def make(session: Session, viewer: Viewer, period: Period, filters: Filters) -> Made:
        scope = scope_of(session, viewer, filters)
        report = abc_xyz.abc_xyz(session, period, filters, scope, options)
        return report, abc_xyz.tables(report)

    return await _answer(request, "abc-xyz", make)


@routes.get("/api/v1/reports/calls")
async def calls_report(request: web.Request) -> web.StreamResponse:
    line = request.query.get("line") or None
    if line is not None and len(line) > 120:
        raise ApiError(400, "invalid_query", "line: a line's key, at most 120 characters")
    options = call_stats.Options(
        answer_within=_int(request, "answer_within", 20, 1, 3600), line=line
    )

    def make(session: Session, viewer: Viewer, period: Period, filters: Filters) -> Made:
        scope = scope_of(session, viewer, filters)
        report = call_stats.calls(session, period, filters, scope, options)
        return report, call_stats.tables(report)

    return await _answer(request, "calls", make)


def _int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18) or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name}: a whole number from {low} to {high}")
    return int(raw)


def _share(request: web.Request, name: str, default: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < 10:
        raise ApiError(400, "invalid_query", f"{name}: a share like 0.1 (10 %)")
    return value
