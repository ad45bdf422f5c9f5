"""Parked inbound items (admin): what a channel could not take, and a retry by hand.

See :mod:`crm_core.parked`. The Meta lead hooks park leads the Graph API would not give;
the Telegram connector parks files it could not download yet (``crm_core.late_files``);
a polling bot and a mailbox reader park an update or a mail whose handling kept raising
(``crm_core.poisoned``), which their next pass handles again after a retry.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from crm_core import parked
from crm_core.journal import Journal
from crm_core.queries import plain
from hub.api.auth import require_admin
from hub.api.errors import not_found
from hub.api.ids import cursor_schema, id_schema, path_id
from hub.api.reads import _choice, _paging
from hub.keys import CLOCK, DATABASE

routes = web.RouteTableDef()
PATH = "/api/v1/parked"
CHANNELS = ("meta", "telegram", "email", "site_chat")


@routes.get(PATH)
async def list_parked(request: web.Request) -> web.Response:
    require_admin(request)
    after, limit = _paging(request)
    page = await request.app[DATABASE].read(
        partial(
            parked.parked_page,
            after=after,
            limit=limit,
            channel=_choice(request, "channel", set(CHANNELS)),
            status=_choice(request, "status", set(parked.STATUSES)),
        )
    )
    return web.json_response(page.as_json())


@routes.post(PATH + "/{id}/retry")
async def retry_parked(request: web.Request) -> web.Response:
    viewer = require_admin(request)
    item_id = path_id(request)
    clock = request.app[CLOCK]

    def work(session: Session) -> dict[str, Any] | None:
        journal = Journal(viewer.actor, clock.now())
        row = parked.retry_now(session, journal, item_id)
        journal.flush(session)
        return None if row is None else plain(row)

    found = await request.app[DATABASE].write(work)
    if found is None:
        raise not_found("parked item")
    return web.json_response(found)


@routes.delete(PATH + "/{id}")
async def drop_parked(request: web.Request) -> web.Response:
    viewer = require_admin(request)
    item_id = path_id(request)
    clock = request.app[CLOCK]

    def work(session: Session) -> bool:
        journal = Journal(viewer.actor, clock.now())
        dropped = parked.drop(session, journal, item_id)
        journal.flush(session)
        return dropped

    if not await request.app[DATABASE].write(work):
        raise not_found("parked item")
    return web.Response(status=204)


# -- the OpenAPI entries ------------------------------------------------------------------


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def schemas() -> dict[str, Any]:
    when = {"type": "string", "format": "date-time"}
    return {
        "ParkedItem": {
            "type": "object",
            "required": [
                "id",
                "channel",
                "account",
                "item_key",
                "status",
                "reason",
                "attempts",
                "detail",
                "first_failed_at",
                "last_failed_at",
                "next_attempt_at",
            ],
            "properties": {
                "id": id_schema(),
                "channel": {
                    "type": "string",
                    "description": "Where it came in: meta, telegram, email",
                },
                "account": {
                    "type": "string",
                    "description": "The source's, the bot's or the mailbox's key",
                },
                "item_key": {
                    "type": "string",
                    "description": "Its natural key: the leadgen id; for a Telegram file "
                    "<chat_id>:<message_id>/<attachment index>; for a Telegram update "
                    "update:<update_id>; for a mail uid:<UIDVALIDITY>:<UID>",
                },
                "status": {
                    "type": "string",
                    "enum": list(parked.STATUSES),
                    "description": "retrying: tried again after a backoff; parked: given up",
                },
                "reason": {"type": "string", "description": "Why it was not taken, last time"},
                "attempts": {"type": "integer", "minimum": 0},
                "detail": {
                    "type": "object",
                    "description": "e.g. form_id, page_id; message_id, attachment, file_id; "
                    "update_id or folder, uidvalidity, uid, and raw (the stored item's key)",
                },
                "first_failed_at": when,
                "last_failed_at": when,
                "next_attempt_at": {"anyOf": [when, {"type": "null"}]},
            },
        },
        "ParkedPage": {
            "type": "object",
            "required": ["items", "next_after"],
            "properties": {
                "items": {"type": "array", "items": _ref("ParkedItem")},
                "next_after": {"anyOf": [id_schema(), {"type": "null"}]},
            },
        },
    }


def paths() -> dict[str, Any]:
    error = _ref("Error")
    forbidden = _json(error, "Not an admin (or an integration token).")
    return {
        PATH: {
            "get": {
                "summary": "Inbound items a channel could not take (admin): a lead the "
                "Graph API refused, a Telegram file not downloaded yet, an update or a mail whose "
                "handling kept failing, with the reason and when.",
                "parameters": [
                    {"name": "after", "in": "query", "schema": cursor_schema()},
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {
                        "name": "channel",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(CHANNELS)},
                    },
                    {
                        "name": "status",
                        "in": "query",
                        "schema": {"type": "string", "enum": list(parked.STATUSES)},
                    },
                ],
                "responses": {
                    "200": _json(_ref("ParkedPage"), "A page of parked items, oldest first."),
                    "403": forbidden,
                },
            }
        },
        PATH + "/{id}/retry": {
            "post": {
                "summary": "Try a parked item again at once, with a fresh retry budget (admin).",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": id_schema()}
                ],
                "responses": {
                    "200": _json(_ref("ParkedItem"), "The item, due now."),
                    "403": forbidden,
                    "404": _json(error, "No such parked item (taken since, perhaps)."),
                },
            }
        },
        PATH + "/{id}": {
            "delete": {
                "summary": "Give a parked item up for good (admin): it leaves the list and is "
                "not tried again; audited.",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": id_schema()}
                ],
                "responses": {
                    "204": {"description": "Dropped."},
                    "403": forbidden,
                    "404": _json(error, "No such parked item (taken since, perhaps)."),
                },
            }
        },
    }
