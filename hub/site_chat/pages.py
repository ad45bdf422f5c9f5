"""The widget's HTTP side: the loader, the frame, the loader's config, and files.

``GET /widget.js`` is the only code of the hub that runs in the host page; everything
else runs in the frame (the hub's origin, its own strict CSP). A page of an origin the
widget does not allow gets ``403 origin_not_allowed`` from the config request (the
loader prints it in the console; the hub logs it), and the frame's
``frame-ancestors`` names the allowed origins only.
"""

from __future__ import annotations

import html
import logging
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from sqlalchemy.orm import Session

from connectors.site_chat.config import WidgetConfig, normalized_origin
from crm_core import site_visitors as visitors
from crm_core.site_visitors import Visitor
from hub.api.errors import ApiError, json_error
from hub.files import FILES, content_disposition, download_name
from hub.keys import CLOCK, DATABASE
from hub.site_chat import SITE_CHAT, SiteChat
from hub.web.pages import STATIC_DIR, asset_version, preferred_locale

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
LOADER = STATIC_DIR / "widget" / "loader.js"


def _widget(request: web.Request) -> tuple[SiteChat, WidgetConfig]:
    chat = request.app[SITE_CHAT]
    widget = chat.config.widget(request.query.get("key", ""))
    if widget is None:
        raise ApiError(404, "not_found", "no widget has this key (data-key of the tag)")
    return chat, widget


@routes.get("/widget.js")
async def loader(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(
        LOADER,
        headers={
            "Content-Type": "application/javascript; charset=utf-8",
            "Cache-Control": "public, max-age=300",
            "X-Content-Type-Options": "nosniff",
            "Cross-Origin-Resource-Policy": "cross-origin",
        },
    )


@routes.get("/widget/v1/config")
async def config(request: web.Request) -> web.Response:
    """The loader's question: may this page show the widget, and how does it look."""
    _chat, widget = _widget(request)
    origin = request.headers.get("Origin")
    cors = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"} if origin else {}
    if not widget.allows(origin):
        log.warning(
            "site chat: widget %s refused a page of %.200s (not in allowed_origins)",
            widget.key,
            origin or "no origin",
        )
        response = json_error(
            403,
            "origin_not_allowed",
            f"the widget {widget.key} may not be shown on {origin or 'this page'}: "
            "add the origin to its allowed_origins",
        )
        response.headers.update(cors)
        return response
    body = {
        "widget": {
            "key": widget.key,
            "title": widget.title,
            "color": widget.color,
            "language": widget.language,
            "position": widget.position,
        }
    }
    return web.json_response(body, headers={**cors, "Cache-Control": "no-cache"})


@routes.get("/widget/frame")
async def frame(request: web.Request) -> web.Response:
    """The chat panel's page, to be framed by an allowed origin only."""
    _chat, widget = _widget(request)
    host = normalized_origin(request.query.get("host", ""))
    if not widget.allows(host):
        log.warning(
            "site chat: widget %s frame asked for a page of %.200s (not allowed)",
            widget.key,
            request.query.get("host", ""),
        )
        raise ApiError(403, "origin_not_allowed", "this origin may not show the widget")
    locale = preferred_locale(request.headers.get("Accept-Language"))
    version = asset_version()
    page = (
        "<!doctype html>\n"
        f'<html lang="{locale}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(widget.title)}</title>\n"
        f'<link rel="stylesheet" href="/static/widget/frame.css?v={version}">\n'
        f'<script type="module" src="/static/widget/frame.js?v={version}"></script>\n'
        "</head>\n"
        f'<body data-key="{html.escape(widget.key)}" data-host="{html.escape(host)}">\n'
        '<main id="chat"></main>\n</body>\n</html>\n'
    )
    own = request.host
    csp = (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        f"connect-src 'self' ws://{own} wss://{own}; "
        f"frame-ancestors {' '.join(widget.allowed_origins)}; base-uri 'none'; form-action 'none'"
    )
    response = web.Response(text=page, content_type="text/html", charset="utf-8")
    response.headers.update(
        {
            "Content-Security-Policy": csp,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-cache",
        }
    )
    return response


async def _visitor(request: web.Request, widget: WidgetConfig) -> Visitor:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "send the chat's token as 'Authorization: Bearer …'")
    now = request.app[CLOCK].now()

    def work(session: Session) -> Visitor | None:
        account = visitors.widget_account(session, widget.key, now)
        return visitors.by_token(session, account, token.strip(), now)

    found = await request.app[DATABASE].write(work)
    if found is None:
        raise ApiError(401, "unauthorized", "this chat session is not known: reload the page")
    return found


@routes.post("/widget/v1/files")
async def upload(request: web.Request) -> web.Response:
    chat, widget = _widget(request)
    visitor = await _visitor(request, widget)
    limit = widget.limits.max_file_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(413, "body_too_large", f"a file may have at most {limit} bytes")
    content_type = request.content_type.lower()
    if content_type not in widget.file_types:
        raise ApiError(415, "unsupported_type", f"files of type {content_type} are not accepted")
    if not await chat.uploads_by_visitor.allow(str(visitor.id), widget.limits.uploads_per_minute):
        raise ApiError(429, "rate_limited", "too many files a minute; wait a little")
    data = await _body(request, limit)
    if not data:
        raise ApiError(400, "empty", "the file is empty")
    name = download_name(unquote(request.headers.get("X-File-Name", "file"))[:255])
    key = await chat.store.put(data, kind="site_chat")
    now = request.app[CLOCK].now()
    await request.app[DATABASE].write(
        lambda s: visitors.add_upload(s, visitor.id, key, name, content_type, len(data), now)
    )
    shown: dict[str, Any] = {
        "id": key,
        "name": name,
        "size": len(data),
        "content_type": content_type,
    }
    return web.json_response({"file": shown}, status=201)


async def _body(request: web.Request, limit: int) -> bytes:
    """The body, refused as soon as it passes ``limit`` (chunked uploads too)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"a file may have at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@routes.get("/widget/v1/files/{file_id:.+}")
async def download(request: web.Request) -> web.Response:
    _chat, widget = _widget(request)
    visitor = await _visitor(request, widget)
    key = request.match_info["file_id"]
    found = await request.app[DATABASE].read(lambda s: visitors.file_of(s, visitor, key))
    if found is None:
        raise ApiError(404, "not_found", "no such file in this chat")
    try:
        data = await request.app[FILES].get(key)
    except KeyError:
        raise ApiError(404, "not_found", "the file is no longer stored") from None
    return web.Response(
        body=data,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": content_disposition("attachment", str(found["name"])),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
