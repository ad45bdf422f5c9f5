"""Calls through the API: click-to-call (``POST /api/v1/calls``) and the calls list
(``GET /api/v1/calls``: every call the viewer may see, or one contact's, filtered)."""

from __future__ import annotations

from functools import partial

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.access import sees_contact
from crm_core.call_log import DISPOSITIONS, MISSED, CallFilter, calls_page
from crm_core.enums import Direction, IdentityKind
from crm_core.models import ContactIdentity
from crm_core.reports.common import Period
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.ids import Id, query_id
from hub.api.query_params import bad_query as _bad
from hub.api.query_params import query_day as _date
from hub.api.reads import _paging
from hub.keys import DATABASE, SETTINGS
from hub.sip import SIP

routes = web.RouteTableDef()
DIRECTIONS = frozenset(d.value for d in (Direction.INBOUND, Direction.OUTBOUND))


class NewCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    contact_id: Id
    manager_id: Id | None = None
    line: str | None = Field(default=None, min_length=1, max_length=120)


@routes.post("/api/v1/calls")
async def post_call(request: web.Request) -> web.Response:
    """Ring the manager's phone, then the client's: answers 202 with the call's key."""
    body = await parse_body(request, NewCall)
    viewer = request[VIEWER]
    manager_id = body.manager_id or viewer.manager_id
    if manager_id is None:
        raise ApiError(400, "invalid_body", "manager_id: needed with an integration token")
    if viewer.is_person and not viewer.can_reassign and manager_id != viewer.manager_id:
        # A manager calls from their own phone; ringing a colleague's is the head's call.
        raise ApiError(403, "forbidden", "a manager places calls from their own phone only")
    channel = request.app.get(SIP)
    if channel is None or channel.engine is None or channel.bridge is None:
        raise ApiError(409, "telephony_off", "SIP telephony is not running on this hub")
    lines = [
        line
        for line in channel.config.lines
        if manager_id in line.managers and (body.line is None or line.key == body.line)
    ]
    if not lines:
        raise ApiError(409, "conflict", f"manager {manager_id} has no phone on a SIP line")
    line = lines[0]

    def phone(session: Session) -> str | None:
        if not sees_contact(session, viewer, body.contact_id):
            return None
        return session.scalar(
            select(ContactIdentity.value)
            .where(
                ContactIdentity.contact_id == body.contact_id,
                ContactIdentity.kind == IdentityKind.PHONE,
                ContactIdentity.unreachable_at.is_(None),
            )
            .order_by(ContactIdentity.id)
            .limit(1)
        )

    number = await request.app[DATABASE].read(phone)
    if number is None:
        raise not_found("a contact with a phone number")
    engine = channel.engine
    call_id = await channel.bridge.submit(
        lambda: engine.line(line.key).click_to_call(
            manager_id, line.managers[manager_id], number, body.contact_id
        )
    )
    return web.json_response(
        {"call_key": f"sip:{call_id}", "line": line.key, "manager_id": manager_id}, status=202
    )


@routes.get("/api/v1/calls")
async def get_calls(request: web.Request) -> web.Response:
    """Every call the viewer may see (or one contact's), newest first, filtered."""
    wanted = _call_filter(request)
    viewer = request[VIEWER]
    page = await request.app[DATABASE].read(partial(calls_page, viewer=viewer, wanted=wanted))
    if page is None:
        raise not_found("contact")
    for item in page["items"]:
        for file in ("voicemail", "recording"):
            index = item.pop(f"{file}_index")
            item[f"{file}_url"] = (
                None
                if index is None
                else f"/api/v1/messages/{item['message_id']}/attachments/{index}"
            )
    return web.json_response(page)


def _call_filter(request: web.Request) -> CallFilter:
    after, limit = _paging(request)
    zone = request.app[SETTINGS].timezone
    first = _date(request, "from")
    last = _date(request, "to")
    if first is not None and last is not None and last < first:
        raise _bad("to", "the period ends before it starts")
    line = request.query.get("line")
    if line is not None and not 0 < len(line) <= 120:
        raise _bad("line", "a line's key, at most 120 characters")
    return CallFilter(
        contact_id=query_id(request, "contact_id"),
        direction=_one_of(request, "direction", DIRECTIONS),
        disposition=_one_of(request, "disposition", DISPOSITIONS | {MISSED}),
        manager_id=query_id(request, "manager_id"),
        line=line,
        start=None if first is None else Period(first, first, zone).start,
        end=None if last is None else Period(last, last, zone).end,
        after=after,
        limit=limit,
    )


def _one_of(request: web.Request, name: str, allowed: frozenset[str]) -> str | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in allowed:
        raise _bad(name, f"one of {', '.join(sorted(allowed))}")
    return raw
