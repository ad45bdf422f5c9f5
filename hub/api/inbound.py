"""``POST /api/v1/inbound``: the API channel into the ingest service."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crm_core.contracts import IngestResult
from crm_core.ingest import InvalidInboundError
from hub.api.bodies import parse_body
from hub.api.errors import ApiError
from hub.api.inbound_schema import InboundBody
from hub.keys import CLOCK, INGEST

routes = web.RouteTableDef()


@routes.post("/api/v1/inbound")
async def post_inbound(request: web.Request) -> web.Response:
    body = await parse_body(request, InboundBody)
    message = body.to_message(request.app[CLOCK].now())
    try:
        result = await request.app[INGEST].ingest(message)
    except InvalidInboundError as exc:
        field = exc.field if exc.field == "funnel" else f"sender.{exc.field}"
        raise ApiError(
            400,
            "invalid_body",
            f"{field}: {exc.problem}",
            errors=[{"field": field, "message": exc.problem}],
        ) from None
    return web.json_response(_result_json(result), status=200 if result.duplicate else 201)


def _result_json(result: IngestResult) -> dict[str, Any]:
    return {
        "duplicate": result.duplicate,
        "contact_id": result.contact_id,
        "conversation_id": result.conversation_id,
        "message_id": result.message_id,
        "deal_id": result.deal_id,
        "task_id": result.task_id,
        "assignee_id": result.assignee_id,
        "contact_created": result.contact_created,
        "deal_created": result.deal_created,
        "merged_contact_ids": list(result.merged_contact_ids),
    }
