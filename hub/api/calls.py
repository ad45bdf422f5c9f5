"""Calls through the API: click-to-call (``POST /api/v1/calls``) and a contact's calls."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core import queries
from crm_core.access import sees_contact
from crm_core.enums import IdentityKind
from crm_core.models import Call, ContactIdentity
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.ids import Id, query_id
from hub.api.reads import _paging
from hub.keys import DATABASE
from hub.sip import SIP

routes = web.RouteTableDef()


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
    contact_id = query_id(request, "contact_id")
    if contact_id is None:
        raise ApiError(400, "invalid_query", "contact_id: the contact whose calls to list")
    after, limit = _paging(request)
    viewer = request[VIEWER]

    def work(session: Session) -> list[queries.Row] | None:
        if not sees_contact(session, viewer, contact_id):
            return None
        query = select(Call).where(Call.contact_id == contact_id)
        if after:
            query = query.where(Call.id < after)
        rows = session.scalars(query.order_by(Call.id.desc()).limit(limit))
        return [queries.plain(row) for row in rows]

    items = await request.app[DATABASE].read(work)
    if items is None:
        raise not_found("contact")
    next_after = items[-1]["id"] if len(items) == limit else None
    return web.json_response({"items": items, "next_after": next_after})
