"""Requests refused at ``/hooks/...`` are recorded for an admin (``GET /api/v1/hooks/rejected``).

A middleware (the outermost: it also sees the 413 the body limit answers before any
handler) looks at every answer under ``/hooks/`` to a configured source (a webhook source,
a Telegram bot in webhook mode): a 4xx other than 404/405 is recorded with the source,
status, the answer's reason and a SHA-256 of the body (:mod:`crm_core.rejected_hooks`).
Neither the body nor a header is kept. Recording never changes the answer.

Why a table of its own and not parked items: a parked item is something the hub could
still take (it is retried); a refused request cannot be (its body is not kept, and it
was refused for what it is), and repeats of it are counted rather than retried.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from functools import partial

from aiohttp import web
from aiohttp.typedefs import Handler

from crm_core import rejected_hooks
from crm_core.rejected_hooks import Rejection
from hub.keys import CLOCK, DATABASE, SETTINGS
from hub.metrics import METRICS
from webhooks.sources import KINDS, HooksConfig

log = logging.getLogger(__name__)
NOT_RECORDED = frozenset({404, 405})


_SOURCES = web.AppKey("hook_rejection_sources", frozenset[tuple[str, str]])


def install(app: web.Application, config: HooksConfig) -> None:
    app[_SOURCES] = _configured(app, config)
    app.middlewares.insert(0, rejections_middleware)


def _configured(app: web.Application, config: HooksConfig) -> frozenset[tuple[str, str]]:
    """The (path kind, key) pairs worth recording: only configured ones (bounded)."""
    slugs = {kind: slug for slug, kind in KINDS.items()}
    found = {(slugs.get(s.kind, s.kind), key) for key, s in config.sources.items()}
    telegram = app[SETTINGS].channels.get("telegram")
    bots = telegram.get("bots") if isinstance(telegram, Mapping) else None
    for bot in bots if isinstance(bots, list) else ():
        if isinstance(bot, Mapping) and isinstance(bot.get("key"), str):
            found.add(("telegram", bot["key"]))
    return frozenset(found)


@web.middleware
async def rejections_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if (
        400 <= response.status < 500
        and response.status not in NOT_RECORDED
        and request.path.startswith("/hooks/")
    ):
        parts = request.path.split("/")
        if len(parts) == 4 and (parts[2], parts[3]) in request.app[_SOURCES]:
            await _record(request, response, parts[2], parts[3])
    return response


async def _record(
    request: web.Request, response: web.StreamResponse, kind: str, source: str
) -> None:
    body = b""
    if response.status != 413:  # a body refused for its size is never read
        try:
            body = await request.read()  # read by the handler already: from memory
        except web.HTTPException:
            body = b""
    error, reason = _reason(response)
    rejection = Rejection(
        kind=kind,
        source=source,
        status=response.status,
        error=error,
        reason=reason,
        body_sha256=hashlib.sha256(body).hexdigest() if body else "",
        body_bytes=len(body) if body else (request.content_length or 0),
    )
    app = request.app
    try:
        await app[DATABASE].write(
            partial(rejected_hooks.record, rejection=rejection, now=app[CLOCK].now())
        )
    except Exception:  # the answer goes out as it is
        log.exception("hooks: recording a refused request to %s/%s failed", kind, source)
    if METRICS in app:
        app[METRICS].rejected(kind, source, response.status)


def _reason(response: web.StreamResponse) -> tuple[str, str]:
    body = response.body if isinstance(response, web.Response) else None
    if isinstance(body, bytes):
        try:
            shown = json.loads(body)
        except ValueError:
            text = body.decode("utf-8", "replace").strip()
            return "refused", text[:300] or response.reason
        if isinstance(shown, dict):
            return str(shown.get("error", "refused")), str(shown.get("message", response.reason))
    return "refused", response.reason
