"""Read endpoints with keyset pagination, and the undo of a contact merge."""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from crm_core import queries
from crm_core.enums import ConversationStatus, TaskStatus
from crm_core.inbox import contact_card
from crm_core.journal import Journal
from crm_core.merge import MergeError, undo_merge
from hub.api.auth import VIEWER
from hub.api.errors import ApiError, not_found
from hub.api.ids import path_id, query_cursor, query_id
from hub.api.list_filters import contact_filter, deal_filter, funnel_and_stage
from hub.keys import CLOCK, DATABASE, RELAY

routes = web.RouteTableDef()
MAX_LIMIT = 200


def _int_param(request: web.Request, name: str, default: int | None, low: int, high: int) -> Any:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"{name}: expected an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ApiError(400, "invalid_query", f"{name}: must be between {low} and {high}")
    return value


def _choice(request: web.Request, name: str, allowed: set[str]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in allowed:
        raise ApiError(400, "invalid_query", f"{name}: one of {', '.join(sorted(allowed))}")
    return raw


def _paging(request: web.Request) -> tuple[int, int]:
    after = query_cursor(request, "after")
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    return after, limit


@routes.get("/api/v1/contacts")
async def list_contacts(request: web.Request) -> web.Response:
    after, limit = _paging(request)
    page = await request.app[DATABASE].read(
        partial(
            queries.contacts_page,
            viewer=request[VIEWER],
            after=after,
            limit=limit,
            wanted=contact_filter(request),
        )
    )
    return web.json_response(page.as_json())


@routes.get("/api/v1/contacts/{id}")
async def get_contact(request: web.Request) -> web.Response:
    found = await request.app[DATABASE].read(
        partial(contact_card, viewer=request[VIEWER], contact_id=path_id(request))
    )
    return _found(found, "contact")


@routes.get("/api/v1/conversations")
async def list_conversations(request: web.Request) -> web.Response:
    after, limit = _paging(request)
    page = await request.app[DATABASE].read(
        partial(
            queries.conversations_page,
            viewer=request[VIEWER],
            after=after,
            limit=limit,
            status=_choice(request, "status", {s.value for s in ConversationStatus}),
            contact_id=query_id(request, "contact_id"),
        )
    )
    return web.json_response(page.as_json())


@routes.get("/api/v1/conversations/{id}")
async def get_conversation(request: web.Request) -> web.Response:
    after, limit = _paging(request)
    found = await request.app[DATABASE].read(
        partial(
            queries.conversation_detail,
            viewer=request[VIEWER],
            conversation_id=path_id(request),
            after=after,
            limit=limit,
        )
    )
    return _found(found, "conversation")


@routes.get("/api/v1/deals")
async def list_deals(request: web.Request) -> web.Response:
    after, limit = _paging(request)
    funnel, stage = funnel_and_stage(request)
    page = await request.app[DATABASE].read(
        partial(
            queries.deals_page,
            viewer=request[VIEWER],
            after=after,
            limit=limit,
            funnel=funnel,
            stage=stage,
            contact_id=query_id(request, "contact_id"),
            wanted=deal_filter(request),
        )
    )
    return web.json_response(page.as_json())


@routes.get("/api/v1/deals/{id}")
async def get_deal(request: web.Request) -> web.Response:
    found = await request.app[DATABASE].read(
        partial(queries.deal_detail, viewer=request[VIEWER], deal_id=path_id(request))
    )
    return _found(found, "deal")


@routes.get("/api/v1/funnels")
async def list_funnels(request: web.Request) -> web.Response:
    funnels = await request.app[DATABASE].read(queries.funnels)
    return web.json_response({"items": funnels})


@routes.get("/api/v1/tasks")
async def list_tasks(request: web.Request) -> web.Response:
    """``view``: ``mine`` (assigned to the caller), ``overdue`` (open, past due), ``all``."""
    after, limit = _paging(request)
    viewer = request[VIEWER]
    view = _choice(request, "view", {"mine", "overdue", "all"})
    assignee = query_id(request, "assignee_id")
    if view == "mine":
        if viewer.manager_id is None:
            raise ApiError(400, "invalid_query", "view=mine needs a manager's session or token")
        assignee = viewer.manager_id
    page = await request.app[DATABASE].read(
        partial(
            queries.tasks_page,
            viewer=viewer,
            after=after,
            limit=limit,
            status=_choice(request, "status", {s.value for s in TaskStatus}),
            assignee_id=assignee,
            deal_id=query_id(request, "deal_id"),
            overdue_at=request.app[CLOCK].now() if view == "overdue" else None,
        )
    )
    return web.json_response(page.as_json())


@routes.post("/api/v1/merges/{id}/undo")
async def post_undo_merge(request: web.Request) -> web.Response:
    merge_id = path_id(request)
    viewer = request[VIEWER]
    if not viewer.can_reassign:
        raise ApiError(403, "forbidden", "only a head of sales or an admin may undo a merge")
    actor = viewer.actor
    clock = request.app[CLOCK]

    def work(session: Session) -> queries.Row:
        journal = Journal(actor, clock.now())
        record = undo_merge(session, merge_id, journal)
        journal.flush(session)
        return queries.plain(record, skip=("moved",))

    try:
        result = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("merge") from None
    except MergeError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(result)


def _found(found: queries.Row | None, what: str) -> web.Response:
    if found is None:
        raise not_found(what)
    return web.json_response(found)
