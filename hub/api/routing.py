"""``/api/v1/routing``: read the teams, rules and automation in force, and replace them."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.routing_store import store_routing
from hub.api.auth import VIEWER
from hub.api.errors import ApiError
from hub.keys import CLOCK, DATABASE, RELAY, ROUTING, ROUTING_FOLLOWER
from hub.routing_setup import RoutingDocumentError, parse

routes = web.RouteTableDef()


@routes.get("/api/v1/routing")
async def get_routing(request: web.Request) -> web.Response:
    state = request.app[ROUTING]
    return web.json_response({"source": state.source, "document": state.document})


@routes.put("/api/v1/routing")
async def put_routing(request: web.Request) -> web.Response:
    """Validate the whole document first; store it and put it in force only if it is sound."""
    try:
        document: Any = json.loads(await request.read())
    except ValueError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from None
    try:
        parse(document)
    except RoutingDocumentError as exc:
        raise ApiError(
            400, "invalid_routing", str(exc), errors=[{"field": exc.where, "message": str(exc)}]
        ) from None
    actor = request[VIEWER].actor
    clock = request.app[CLOCK]

    def work(session: Session) -> int:
        journal = Journal(actor, clock.now())
        version = store_routing(session, journal, document)
        journal.flush(session)
        return version

    version = await request.app[DATABASE].write(work)
    # In force here now; other processes follow within routing_poll_seconds.
    request.app[ROUTING_FOLLOWER].adopt(document, version)
    request.app[RELAY].wake()
    return web.json_response({"version": version, "source": request.app[ROUTING].source})
