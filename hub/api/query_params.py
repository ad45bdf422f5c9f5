"""Query parameters the lists share, parsed once: a 400 ``invalid_query`` that names the
parameter for a value that is wrong, an empty one included (``?from=`` is not "no filter").

A day (``2026-03-01``) is a day in the company's time zone; a moment is an ISO 8601
date-time with its offset (``2026-03-01T09:00:00Z``), as in a body (``hub.api.moments``).
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

from aiohttp import web
from pydantic import TypeAdapter, ValidationError

from crm_core.reports.common import Period
from hub.api.errors import ApiError
from hub.api.moments import Moment

EARLIEST, LATEST = date(1970, 1, 1), date(9998, 12, 31)  # a day's bounds stay datetimes
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MOMENT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ]")
_MOMENTS = TypeAdapter(Moment)
_AMOUNT = re.compile(r"[0-9]{1,12}(\.[0-9]{1,2})?")
AMOUNT_PATTERN = f"^{_AMOUNT.pattern}$"
"""An amount in a query: a decimal with a dot, at most 12 digits before it and 2 after."""


def bad_query(name: str, problem: str) -> ApiError:
    return ApiError(
        400, "invalid_query", f"{name}: {problem}", errors=[{"field": name, "message": problem}]
    )


def query_day(request: web.Request, name: str) -> date | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise bad_query(name, "a date like 2026-03-01") from None
    if not EARLIEST <= day <= LATEST:
        raise bad_query(name, f"a date from {EARLIEST} to {LATEST}")
    return day


def query_since(request: web.Request, name: str, timezone: str) -> datetime | None:
    """The start of a span: a day's first moment (in ``timezone``), or the moment."""
    found = _day_or_moment(request, name, timezone)
    if isinstance(found, datetime):
        return found
    return None if found is None else Period(found, found, timezone).start


def query_until(request: web.Request, name: str, timezone: str) -> datetime | None:
    """The (exclusive) end of a span that holds the day, or the moment, named."""
    found = _day_or_moment(request, name, timezone)
    if isinstance(found, datetime):
        return found + timedelta(microseconds=1)
    return None if found is None else Period(found, found, timezone).end


def _day_or_moment(request: web.Request, name: str, timezone: str) -> date | datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if _DAY.fullmatch(raw):
        return query_day(request, name)
    problem = "a date like 2026-03-01, or a date-time with its offset like 2026-03-01T09:00:00Z"
    if not _MOMENT.match(raw):
        raise bad_query(name, problem)
    try:
        moment = _MOMENTS.validate_json(json.dumps(raw))
    except ValidationError as exc:
        raise bad_query(name, f"{problem} ({exc.errors(include_url=False)[0]['msg']})") from None
    if not EARLIEST <= moment.date() <= LATEST:
        raise bad_query(name, f"a moment from {EARLIEST} to {LATEST}")
    return moment


def query_amount(request: web.Request, name: str) -> Decimal | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if not _AMOUNT.fullmatch(raw):
        raise bad_query(name, "an amount like 1500 or 1500.50 (at most 2 decimals)")
    return Decimal(raw)


def query_text(request: web.Request, name: str, longest: int) -> str | None:
    """A code or a key: 1..``longest`` characters."""
    raw = request.query.get(name)
    if raw is not None and not 0 < len(raw) <= longest:
        raise bad_query(name, f"1 to {longest} characters")
    return raw
