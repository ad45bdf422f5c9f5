"""``GET /api/v1/hooks/rejected`` (admin): requests refused at ``/hooks/...``, newest first.

See :mod:`hub.hook_rejections` (what is recorded) and :mod:`crm_core.rejected_hooks`
(repeats counted, the newest 1,000 rows per source kept).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiohttp import web

from crm_core import rejected_hooks
from hub.api.auth import require_admin
from hub.api.ids import id_schema, query_cursor
from hub.api.reads import _int_param
from hub.keys import DATABASE

routes = web.RouteTableDef()
PATH = "/api/v1/hooks/rejected"


@routes.get(PATH)
async def list_rejected(request: web.Request) -> web.Response:
    require_admin(request)
    before = query_cursor(request, "before") if "before" in request.query else None
    limit = _int_param(request, "limit", 50, 1, 200)
    page = await request.app[DATABASE].read(
        partial(
            rejected_hooks.page,
            before=before,
            limit=limit,
            kind=request.query.get("kind"),
            source=request.query.get("source"),
        )
    )
    return web.json_response(page)


# -- the OpenAPI entries ------------------------------------------------------------------


def schemas() -> dict[str, Any]:
    when = {"type": "string", "format": "date-time"}
    return {
        "RejectedHook": {
            "type": "object",
            "required": [
                "id",
                "kind",
                "source",
                "status",
                "error",
                "reason",
                "body_sha256",
                "body_bytes",
                "count",
                "first_seen_at",
                "last_seen_at",
            ],
            "properties": {
                "id": id_schema(),
                "kind": {
                    "type": "string",
                    "description": "The path's kind: forms, tilda, meta, telegram, ...",
                },
                "source": {"type": "string", "description": "The source's (or bot's) key"},
                "status": {"type": "integer", "description": "401, 400, 413, 415, ..."},
                "error": {"type": "string", "description": "The answer's error code"},
                "reason": {"type": "string", "description": "The answer's message"},
                "body_sha256": {
                    "type": "string",
                    "description": "SHA-256 of the body, hex; empty when the body was not "
                    "read (refused for its declared size). The body itself is never kept.",
                },
                "body_bytes": {"type": "integer", "minimum": 0},
                "count": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "Refusals of the same body with the same status",
                },
                "first_seen_at": when,
                "last_seen_at": when,
            },
        },
        "RejectedHookPage": {
            "type": "object",
            "required": ["items", "next_before"],
            "properties": {
                "items": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/RejectedHook"},
                },
                "next_before": {"anyOf": [id_schema(), {"type": "null"}]},
            },
        },
    }


def paths() -> dict[str, Any]:
    def json(schema: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }

    return {
        PATH: {
            "get": {
                "summary": "Requests refused at /hooks/... (admin): source, status, reason, "
                "a SHA-256 of the body, how many times; the newest 1,000 per source.",
                "parameters": [
                    {
                        "name": "before",
                        "in": "query",
                        "schema": id_schema(),
                        "description": "Items with ids below this one (next_before).",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                    {"name": "kind", "in": "query", "schema": {"type": "string"}},
                    {"name": "source", "in": "query", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": json("RejectedHookPage", "Newest first."),
                    "403": json("Error", "Not an admin (or an integration token)."),
                },
            }
        }
    }
