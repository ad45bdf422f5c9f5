"""Inbound webhooks under ``/hooks/{kind}/{source}`` (not token-guarded: each source has its
own secret) and the wiring of outbound webhooks.

Each source is configured in ``[channels.webhooks]`` (see :mod:`webhooks.sources`).
An adapter verifies and parses; every lead goes through the ingest service and the
sender gets its 2xx only after the commit. Unknown source 404, bad signature 401,
malformed body 400, too large 413: none of them writes anything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import web

from crm_core.contracts import Checkpoint, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.ingest import InvalidInboundError
from crm_core.outbox import OutboxHandler
from hub import hook_rejections
from hub.api import hooks_rejected
from hub.api import webhooks as admin
from hub.api.errors import ApiError
from hub.background import cancel_all
from hub.keys import CLOCK, DATABASE, INGEST, SETTINGS
from hub.meta_leads import MetaLeads
from hub.roles import runs_background
from webhooks import forms, google_ads, meta, standard, tilda, vk, yandex_forms, zadarma
from webhooks.common import Answer, HookError, HookRequest, Leads
from webhooks.sources import KINDS, HooksConfig, Source, load_config

__all__ = ["install", "relay_handlers"]
log = logging.getLogger(__name__)
URL_CHECKS = ("meta", "zadarma")  # the kinds whose platform checks the URL with a GET
HOOKS = web.AppKey("hooks_config", HooksConfig)
GRAPH = web.AppKey("hooks_graph_client", aiohttp.ClientSession)
META_LEADS = web.AppKey("hooks_meta_leads", MetaLeads)


def install(app: web.Application) -> None:
    """Check the sources (a bad table fails at start, naming the key) and add the routes."""
    app[HOOKS] = load_config(app[SETTINGS].channels.get("webhooks"))
    kinds = "|".join(re.escape(slug) for slug in KINDS)  # not /hooks/telegram/... etc.
    app.router.add_post(f"/hooks/{{kind:{kinds}}}/{{source}}", post_hook)
    # Only these platforms check the URL with a GET; elsewhere a GET is a 405 (Allow: POST).
    checked = "|".join(re.escape(slug) for slug in URL_CHECKS)
    app.router.add_get(f"/hooks/{{kind:{checked}}}/{{source}}", get_hook)
    app.router.add_routes(admin.routes)
    app.router.add_routes(hooks_rejected.routes)
    hook_rejections.install(app, app[HOOKS])  # refused requests, for an admin
    app.cleanup_ctx.append(admin.close_poster)
    app.cleanup_ctx.append(_graph_client)


def relay_handlers(
    app: web.Application, db: Database, events: OutboxHandler
) -> dict[str, OutboxHandler]:
    """The outbox relay's handlers of outbound webhooks (``events`` fan-out, ``webhook.``)."""
    config = app[HOOKS]
    return admin.relay_handlers(
        app,
        db,
        events,
        disable_after=config.disable_after_failures,
        failing_for=timedelta(hours=config.disable_after_hours),
        retention=timedelta(days=config.delivery_retention_days),
        timeout=float(config.delivery_timeout_seconds),
        allow_private=config.allow_private_targets,
    )


async def _graph_client(app: web.Application) -> AsyncIterator[None]:
    """The Graph API client of the Meta sources, and the retries of their parked leads."""
    config = app[HOOKS]
    retrier = None
    if any(s.kind == "meta" for s in config.sources.values()):
        app[GRAPH] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))

        async def ingest(message: InboundMessage) -> IngestResult:
            return await _ingest(app, config, message, Leads((message,)))

        app[META_LEADS] = MetaLeads(
            app[DATABASE], app[CLOCK], app[GRAPH], ingest, config.lead_retry_attempts
        )
        if runs_background(app):  # a web process of scaled mode leaves them to the workers
            retrier = asyncio.create_task(
                app[META_LEADS].run_forever(config.sources), name="meta-lead-retries"
            )
    yield
    if retrier is not None:
        await cancel_all([retrier])
    if GRAPH in app:
        await app[GRAPH].close()


def _source(request: web.Request) -> Source:
    kind = KINDS.get(request.match_info["kind"])
    source = request.app[HOOKS].sources.get(request.match_info["source"])
    if kind is None or source is None or source.kind != kind:
        raise ApiError(404, "not_found", "no such webhook source")
    return source


async def _hook_request(request: web.Request, now: datetime) -> HookRequest:
    body = await request.read() if request.method == "POST" else b""
    return HookRequest(
        method=request.method,
        body=body,
        content_type=request.content_type,
        headers=request.headers,
        query=request.query,
        now=now,
        content_type_header=request.headers.get("Content-Type", ""),
    )


async def get_hook(request: web.Request) -> web.Response:
    """Handshakes: Meta's ``hub.challenge``, Zadarma's ``zd_echo``."""
    source = _source(request)
    hook = await _hook_request(request, request.app[CLOCK].now())
    try:
        if source.kind == "meta":
            return _answer(meta.challenge(source, hook))
        echo = zadarma.handle(source, hook) if "zd_echo" in request.query else None
        if isinstance(echo, Answer):
            return _answer(echo)
    except HookError as exc:
        raise ApiError(exc.status, exc.error, exc.message) from None
    raise ApiError(400, "invalid_query", "zd_echo: Zadarma's URL check sends it; it is required")


async def post_hook(request: web.Request) -> web.Response:
    source = _source(request)
    config = request.app[HOOKS]
    hook = await _hook_request(request, request.app[CLOCK].now())
    tolerance = config.signature_tolerance_seconds
    if source.kind == "meta":
        return await _meta_batch(request, source, hook)
    try:
        outcome = _adapt(source, hook, tolerance)
    except HookError as exc:
        raise ApiError(exc.status, exc.error, exc.message) from None
    if isinstance(outcome, Answer):
        return _answer(outcome)
    app = request.app
    results = [await _ingest(app, config, message, outcome) for message in outcome.messages]
    if outcome.answer.text != "ok" or source.kind in ("vk", "zadarma", "tilda"):
        return _answer(outcome.answer)
    return web.json_response({"status": "ok", "leads": [_result(r) for r in results]})


async def _meta_batch(request: web.Request, source: Source, hook: HookRequest) -> web.Response:
    """Verify, find the leads, then take each on its own (see hub/meta_leads.py): the
    stored ones, and those parked, are answered 200 so that Meta stops resending."""
    try:
        meta.verify(source, hook)
        refs = meta.lead_refs(hook)
    except HookError as exc:
        raise ApiError(exc.status, exc.error, exc.message) from None
    results, refused = await request.app[META_LEADS].take(source, refs, hook)
    return web.json_response(
        {
            "status": "ok",
            "leads": [_result(r) for r in results],
            "parked": [r.as_json() for r in refused],
        }
    )


def _adapt(source: Source, hook: HookRequest, tolerance: int) -> Answer | Leads:
    kind = source.kind
    if kind == "form":
        return forms.handle(source, hook, tolerance)
    if kind == "tilda":
        return tilda.handle(source, hook)
    if kind == "google_ads":
        return google_ads.handle(source, hook)
    if kind == "vk":
        return vk.handle(source, hook)
    if kind == "yandex_forms":
        return yandex_forms.handle(source, hook)
    if kind == "zadarma":
        return zadarma.handle(source, hook)
    return standard.handle(source, hook, tolerance)  # (meta: see _meta_batch)


async def _ingest(
    app: web.Application, config: HooksConfig, message: InboundMessage, leads: Leads
) -> IngestResult:
    ingest = app[INGEST]
    message = _clean(message)
    checkpoint = None
    if leads.body_hash is not None:
        message, checkpoint = await _windowed(app, config, message, leads.body_hash)
    while True:
        try:
            result = await ingest.ingest(message, checkpoint)
        except InvalidInboundError as exc:
            fewer = _without_bad_identity(message, exc.field)
            if fewer is None:
                log.info(
                    "source %s: lead %s refused: %s",
                    message.channel_account,
                    message.external_id,
                    exc.field,
                )
                raise _invalid(exc) from None
            log.info(
                "source %s: lead %s: %s unusable, kept in the text",
                message.channel_account,
                message.external_id,
                exc.field,
            )
            message = fewer
            continue
        log.debug(
            "source %s: lead %s stored as message %d%s",
            message.channel_account,
            message.external_id,
            result.message_id,
            " (a repeat)" if result.duplicate else "",
        )
        return result


def _clean(message: InboundMessage) -> InboundMessage:
    """Within the columns' limits, and no NUL characters (PostgreSQL refuses them)."""

    def text(value: str | None, limit: int | None = None) -> str | None:
        if value is None:
            return None
        value = value.replace("\x00", "")
        return value[:limit] if limit else value

    external_id = text(message.external_id) or "-"
    if len(external_id) > 190:
        external_id = "sha256:" + hashlib.sha256(external_id.encode()).hexdigest()
    for identity in message.identities:
        if len(identity.value) > 320:
            raise ApiError(
                400, "invalid_body", f"{identity.kind.value}: longer than 320 characters"
            )
    attribution = {
        name: text(getattr(message.attribution, name), 200)
        for name in message.attribution.__slots__
        if name not in ("referrer", "landing_page")
    }
    return replace(
        message,
        external_id=external_id,
        identities=tuple(replace(i, value=text(i.value) or "") for i in message.identities),
        display_name=text(message.display_name, 200),
        company=text(message.company, 200),
        text=text(message.text) or "",
        raw_ref=text(message.raw_ref, 500),
        attribution=replace(
            message.attribution,
            **attribution,
            referrer=text(message.attribution.referrer, 2000),
            landing_page=text(message.attribution.landing_page, 2000),
        ),
    )


def _without_bad_identity(message: InboundMessage, field: str) -> InboundMessage | None:
    """A lead with one unusable contact detail and another good one is still a lead:
    the bad value is kept in the text."""
    match = re.fullmatch(r"identities\[(\d+)\]\.value", field)
    if match is None or len(message.identities) < 2:
        return None
    index = int(match.group(1))
    bad = message.identities[index]
    return replace(
        message,
        identities=message.identities[:index] + message.identities[index + 1 :],
        text=f"{message.text}\nUnrecognised {bad.kind.value}: {bad.value}".strip(),
    )


def _invalid(exc: InvalidInboundError) -> ApiError:
    return ApiError(
        400,
        "invalid_body",
        f"{exc.field}: {exc.problem}",
        errors=[{"field": exc.field, "message": exc.problem}],
    )


async def _windowed(
    app: web.Application, config: HooksConfig, message: InboundMessage, digest: str
) -> tuple[InboundMessage, Checkpoint | None]:
    """Without a key, the same body to the same source within the window is one lead.

    The first sighting's external id is remembered as a checkpoint of the source
    (in the lead's own transaction); a repeat within the window reuses it.
    """
    window = config.dedup_window_seconds
    now = int(message.occurred_at.timestamp())
    key = f"dedup:{digest}"
    seen = await app[INGEST].checkpoint(message.channel, message.channel_account, key)
    if seen is not None:
        first, _, external_id = seen.partition("|")
        if first.isdigit() and now - int(first) < window and external_id:
            return replace(message, external_id=external_id), None
    external_id = f"body:{digest[:40]}:{now // window}"
    return replace(message, external_id=external_id), Checkpoint(key, f"{now}|{external_id}")


def _answer(answer: Answer) -> web.Response:
    return web.Response(text=answer.text, content_type=answer.content_type, status=answer.status)


def _result(result: IngestResult) -> dict[str, Any]:
    return {
        "duplicate": result.duplicate,
        "contact_id": result.contact_id,
        "deal_id": result.deal_id,
        "task_id": result.task_id,
    }
