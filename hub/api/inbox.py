"""The inbox's endpoints: the conversation list, a contact's history, the funnel board,
the managers to transfer to, and attachment downloads."""

from __future__ import annotations

from functools import partial
from typing import Any

import nh3
from aiohttp import web

from crm_core.enums import ConversationStatus
from crm_core.inbox import VIEWS, InboxFilter, board, inbox, managers, message_in_scope, timeline
from crm_core.models import Message
from hub.api.auth import VIEWER
from hub.api.errors import ApiError, not_found
from hub.api.ids import path_id, query_id
from hub.api.reads import _choice, _int_param
from hub.files import FILES, content_disposition
from hub.keys import DATABASE

routes = web.RouteTableDef()
# Shown inline only when harmless; everything else downloads as an opaque file.
_INLINE = {"image/png", "image/jpeg", "image/gif", "image/webp", "audio/ogg", "audio/mpeg"}
_INLINE |= {"audio/wav", "audio/x-wav", "audio/wave"}  # voicemails play in the inbox
_HTML_MAX = 2_000_000


@routes.get("/api/v1/inbox")
async def get_inbox(request: web.Request) -> web.Response:
    viewer = request[VIEWER]
    view = _choice(request, "view", set(VIEWS)) or ("mine" if viewer.manager_id else "all")
    if view in ("mine", "team") and viewer.manager_id is None:
        raise ApiError(400, "invalid_query", f"view={view} needs a manager's session or token")
    status = _choice(request, "status", {s.value for s in ConversationStatus})
    wanted = InboxFilter(
        view=view,  # type: ignore[arg-type]  # checked against VIEWS above
        channel=request.query.get("channel") or None,
        status=ConversationStatus(status) if status else None,
        limit=_int_param(request, "limit", 100, 1, 500),
    )
    found = await request.app[DATABASE].read(partial(inbox, viewer=viewer, wanted=wanted))
    return web.json_response(found)


@routes.get("/api/v1/contacts/{id}/timeline")
async def get_timeline(request: web.Request) -> web.Response:
    """Every message of the contact across channels; HTML mail comes sanitized."""
    viewer = request[VIEWER]
    found = await request.app[DATABASE].read(
        partial(
            timeline,
            viewer=viewer,
            contact_id=path_id(request),
            before=query_id(request, "before"),
            limit=_int_param(request, "limit", 100, 1, 500),
        )
    )
    for item in found["items"]:
        item["html_safe"] = await _safe_html(request, item)
        item["attachments"] = [
            {**attachment, "url": f"/api/v1/messages/{item['id']}/attachments/{index}"}
            for index, attachment in enumerate(item["attachments"])
        ]
    return web.json_response(found)


async def _safe_html(request: web.Request, item: dict[str, Any]) -> str | None:
    """The HTML body a mail came with, cleaned again with nh3 on its way to the browser
    (the connector stored it sanitized; a second pass costs little and trusts nothing)."""
    for attachment in item["attachments"]:
        key = attachment.get("storage_key")
        if (
            attachment.get("content_type") == "text/html"
            and attachment.get("name") == ("message.html")
            and isinstance(key, str)
        ):
            try:
                data = await request.app[FILES].get(key)
            except KeyError:
                return None
            return nh3.clean(data[:_HTML_MAX].decode("utf-8", errors="replace"))
    return None


@routes.get("/api/v1/messages/{id}/attachments/{index}")
async def get_attachment(request: web.Request) -> web.StreamResponse:
    viewer = request[VIEWER]
    message_id = path_id(request)
    try:
        index = int(request.match_info["index"])
    except ValueError:
        raise ApiError(400, "invalid_path", "the attachment index must be an integer") from None
    message: Message | None = await request.app[DATABASE].read(
        partial(message_in_scope, viewer=viewer, message_id=message_id)
    )
    if message is None or not 0 <= index < len(message.attachments):
        raise not_found("attachment")
    attachment = message.attachments[index]
    key = attachment.get("storage_key")
    if not isinstance(key, str):
        raise not_found("attachment file")
    try:
        data = await request.app[FILES].get(key)
    except KeyError:
        raise not_found("attachment file") from None
    declared = str(attachment.get("content_type") or "")
    inline = declared in _INLINE
    disposition = "inline" if inline else "attachment"
    return web.Response(
        body=data,
        headers={
            "Content-Type": declared if inline else "application/octet-stream",
            "Content-Disposition": content_disposition(
                disposition, str(attachment.get("name") or "file")
            ),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=3600",
        },
    )


@routes.get("/api/v1/funnels/{code}/board")
async def get_board(request: web.Request) -> web.Response:
    code = request.match_info["code"]
    found = await request.app[DATABASE].read(
        partial(board, viewer=request[VIEWER], funnel_code=code)
    )
    if found is None:
        raise not_found("funnel")
    return web.json_response(found)


@routes.get("/api/v1/managers")
async def get_managers(request: web.Request) -> web.Response:
    return web.json_response({"items": await request.app[DATABASE].read(managers)})
