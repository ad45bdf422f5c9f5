"""Outbound webhooks: the relay's handlers, and the admin API of subscriptions and deliveries.

``/api/v1/webhooks/subscriptions`` (token-guarded): create, list, read, change
(``active: true`` re-enables a disabled subscription and sends what waited), delete (its
deliveries not yet done are dropped with it), the delivery log of one, a retry of one
logged delivery, a replay of a period, and a ``ping``. The secret is never shown again
after the response that created it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session

from crm_core import webhook_queue as queue
from crm_core import webhook_subscriptions as subs
from crm_core.db import Database
from crm_core.journal import EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX, Journal
from crm_core.models import WebhookSubscription
from crm_core.outbox import OutboxHandler
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, field_error, not_found
from hub.api.ids import path_id
from hub.api.moments import Moment
from hub.api.reads import _paging
from hub.keys import CLOCK, DATABASE, RELAY
from webhooks.delivery import WebhookPoster
from webhooks.signatures import new_secret, secret_bytes

routes = web.RouteTableDef()
FAN_OUT = web.AppKey("webhook_fan_out", subs.WebhookFanOut)
POSTER = web.AppKey("webhook_poster", WebhookPoster)


def relay_handlers(
    app: web.Application,
    db: Database,
    events: OutboxHandler,
    *,
    disable_after: int,
    timeout: float,
    allow_private: bool,
    failing_for: timedelta = subs.DISABLE_AFTER,
    retention: timedelta = subs.RETENTION,
) -> dict[str, OutboxHandler]:
    """The ``events`` handler (fan-out to subscribers, then ``events``) and ``webhook.``."""
    poster = WebhookPoster(timeout=timeout, allow_private=allow_private)
    # One process (SQLite) makes every subscription itself and forgets its copy at once
    # (invalidate); with several, another may have made one a moment ago: read them for
    # every event, so that one committed before the event always gets it.
    fan_out = subs.WebhookFanOut(
        db,
        app[CLOCK],
        events,
        on_commit=lambda: app[RELAY].wake(),
        cache_seconds=1.0 if db.is_sqlite else 0.0,
    )
    app[POSTER] = poster
    app[FAN_OUT] = fan_out
    return {
        EVENTS_TOPIC: fan_out,
        LEGACY_EVENT_TOPIC_PREFIX: fan_out,
        subs.WEBHOOK_TOPIC_PREFIX: subs.WebhookDispatcher(
            db,
            app[CLOCK],
            poster,
            disable_after,
            failing_for=failing_for,
            retention=retention,
        ),
    }


async def close_poster(app: web.Application) -> AsyncIterator[None]:
    yield
    if POSTER in app:
        await app[POSTER].close()


def _check_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an absolute http(s) URL is needed")
    return value


def _check_secret(value: str | None) -> str | None:
    if value is not None:
        secret_bytes(value)  # a whsec_ secret must decode
    return value


_EVENTS = "Event names, 'prefix.*' or '*'. Today: " + ", ".join(sorted(subs.KNOWN_EVENTS)) + "."
_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class SubscriptionIn(BaseModel):
    """A new subscription; without a secret one is generated and shown once."""

    model_config = _STRICT
    url: str = Field(min_length=8, max_length=2000)
    events: list[str] = Field(min_length=1, max_length=50, description=_EVENTS)
    secret: str | None = Field(default=None, min_length=16, max_length=200)
    description: str = Field(default="", max_length=200)
    active: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return _check_secret(value)


class Replay(BaseModel):
    """The period whose events are sent again: ``since`` (included) to ``until`` (not)."""

    model_config = _STRICT
    since: Moment
    until: Moment | None = Field(default=None, description="Up to now when absent.")


class SubscriptionPatch(BaseModel):
    model_config = _STRICT
    url: str | None = Field(default=None, min_length=8, max_length=2000)
    events: list[str] | None = Field(default=None, min_length=1, max_length=50)
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


async def _write(request: web.Request, work: Callable[[Session, Journal], Any]) -> Any:
    actor = request[VIEWER].actor
    clock = request.app[CLOCK]

    def run(session: Session) -> Any:
        return work(session, Journal(actor, clock.now()))

    try:
        result = await request.app[DATABASE].write(run)
    except subs.SubscriptionError as exc:
        raise ApiError(
            400,
            "invalid_body",
            str(exc),
            errors=[{"field": exc.field, "message": exc.problem}],
        ) from None
    except queue.QueueConflictError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    except LookupError as exc:
        what = "delivery" if str(exc).startswith("delivery") else "webhook subscription"
        raise not_found(what) from None
    if FAN_OUT in request.app:
        request.app[FAN_OUT].invalidate()
    return result


def _public_target(request: web.Request, url: str | None) -> None:
    """A 400 for a URL the deliveries would refuse (a private address, by default)."""
    refusal = request.app[POSTER].refusal(url) if url and POSTER in request.app else None
    if refusal is not None:
        raise ApiError(
            400,
            "invalid_body",
            f"url: {refusal}",
            errors=[{"field": "url", "message": refusal}],
        )


@routes.post("/api/v1/webhooks/subscriptions")
async def create(request: web.Request) -> web.Response:
    body = await parse_body(request, SubscriptionIn)
    _public_target(request, body.url)
    secret = body.secret or new_secret()

    def work(session: Session, journal: Journal) -> dict[str, Any]:
        sub = subs.create_subscription(
            session,
            journal,
            url=body.url,
            events=body.events,
            secret=secret,
            description=body.description,
            active=body.active,
        )
        return subs.subscription_json(sub)

    created = await _write(request, work)
    if body.secret is None:
        created["secret"] = secret  # generated: shown this once
    return web.json_response(created, status=201)


@routes.get("/api/v1/webhooks/subscriptions")
async def list_all(request: web.Request) -> web.Response:
    after, limit = _paging(request)

    def work(session: Session) -> list[dict[str, Any]]:
        rows = subs.list_subscriptions(session, after=after, limit=limit)
        waiting = subs.waiting_counts(session, [r.id for r in rows])
        return [subs.subscription_view(r, waiting[r.id]) for r in rows]

    items = await request.app[DATABASE].read(work)
    return web.json_response(
        {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}
    )


@routes.get("/api/v1/webhooks/subscriptions/{id}")
async def get_one(request: web.Request) -> web.Response:
    sub_id = path_id(request)

    def work(session: Session) -> dict[str, Any] | None:
        found = session.get(WebhookSubscription, sub_id)
        if found is None:
            return None
        return subs.subscription_view(found, subs.waiting_counts(session, [sub_id])[sub_id])

    view = await request.app[DATABASE].read(work)
    if view is None:
        raise not_found("webhook subscription")
    return web.json_response(view)


@routes.patch("/api/v1/webhooks/subscriptions/{id}")
async def patch(request: web.Request) -> web.Response:
    sub_id = path_id(request)
    body = await parse_body(request, SubscriptionPatch)
    _public_target(request, body.url)

    def work(session: Session, journal: Journal) -> dict[str, Any]:
        sub = subs.update_subscription(
            session,
            journal,
            sub_id,
            url=body.url,
            events=body.events,
            description=body.description,
            active=body.active,
        )
        return subs.subscription_json(sub)

    changed = await _write(request, work)
    if body.active:
        request.app[RELAY].wake()  # what waited while it was off is due now
    return web.json_response(changed)


@routes.get("/api/v1/webhooks/subscriptions/{id}/deliveries")
async def deliveries(request: web.Request) -> web.Response:
    sub_id = path_id(request)
    after, limit = _paging(request)

    def work(session: Session) -> list[dict[str, Any]] | None:
        if session.get(WebhookSubscription, sub_id) is None:
            return None
        return [subs.delivery_json(r) for r in subs.list_deliveries(session, sub_id, after, limit)]

    items = await request.app[DATABASE].read(work)
    if items is None:
        raise not_found("webhook subscription")
    return web.json_response(
        {"items": items, "next_after": items[-1]["id"] if len(items) == limit else None}
    )


@routes.delete("/api/v1/webhooks/subscriptions/{id}")
async def delete(request: web.Request) -> web.Response:
    """Delete a subscription: its log and its deliveries not yet done go with it."""
    sub_id = path_id(request)
    await _write(
        request, lambda session, journal: queue.delete_subscription(session, journal, sub_id)
    )
    return web.Response(status=204)


@routes.post("/api/v1/webhooks/subscriptions/{id}/deliveries/{delivery_id}/retry")
async def retry(request: web.Request) -> web.Response:
    sub_id = path_id(request)
    delivery_id = path_id(request, "delivery_id")

    def work(session: Session, journal: Journal) -> dict[str, Any]:
        return queue.retry_delivery(session, journal, sub_id, delivery_id).as_json()

    queued = await _write(request, work)
    request.app[RELAY].wake()
    return web.json_response(queued, status=202)


@routes.post("/api/v1/webhooks/subscriptions/{id}/replay")
async def replay(request: web.Request) -> web.Response:
    sub_id = path_id(request)
    body = await parse_body(request, Replay)
    if body.until is not None and body.until <= body.since:
        raise field_error("until", "must be later than since")

    def work(session: Session, journal: Journal) -> dict[str, Any]:
        return queue.replay_period(session, journal, sub_id, body.since, body.until).as_json()

    queued = await _write(request, work)
    request.app[RELAY].wake()
    return web.json_response(queued, status=202)


@routes.post("/api/v1/webhooks/subscriptions/{id}/ping")
async def ping(request: web.Request) -> web.Response:
    """A ``ping`` event, signed and posted as every webhook is; answers what came back."""
    sub_id = path_id(request)
    db = request.app[DATABASE]
    now = request.app[CLOCK].now()
    try:
        ping = await db.read(lambda session: queue.ping_for(session, sub_id, now))
    except LookupError:
        raise not_found("webhook subscription") from None
    started = time.monotonic()
    outcome = await request.app[POSTER].deliver(
        ping.url, ping.secret, ping.webhook_id, int(now.timestamp()), ping.body.encode()
    )
    elapsed = int((time.monotonic() - started) * 1000)
    answer = (outcome.ok, outcome.status, outcome.error, elapsed)
    await db.write(lambda session: queue.log_ping(session, sub_id, ping, now, answer))
    return web.json_response(
        {
            "ok": outcome.ok,
            "status_code": outcome.status,
            "error": outcome.error,
            "duration_ms": elapsed,
            "webhook_id": ping.webhook_id,
        }
    )
