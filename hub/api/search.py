"""``GET /api/v1/search``: contacts and messages, scoped as the inbox is."""

from __future__ import annotations

from functools import partial

from aiohttp import web

from crm_core.search import search as find
from crm_core.search_words import SearchQueryError
from hub.api.auth import VIEWER
from hub.api.errors import ApiError
from hub.keys import DATABASE, SETTINGS

routes = web.RouteTableDef()
MAX_LIMIT = 50


@routes.get("/api/v1/search")
async def search(request: web.Request) -> web.Response:
    q = request.query.get("q")
    if q is None:
        raise ApiError(400, "invalid_query", "q: required")
    raw = request.query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_query", f"limit: an integer from 1 to {MAX_LIMIT}")
    try:
        found = await request.app[DATABASE].read(
            partial(
                find,
                viewer=request[VIEWER],
                q=q,
                default_region=request.app[SETTINGS].default_region,
                limit=int(raw),
            )
        )
    except SearchQueryError as exc:
        raise ApiError(400, "invalid_query", str(exc)) from None
    return web.json_response(found)
