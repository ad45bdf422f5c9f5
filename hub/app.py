"""``create_app(settings)``: the one factory that wires the hub together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aiohttp import web
from sqlalchemy import text

from crm_core.clock import Clock, SystemClock
from crm_core.contracts import ChannelSender
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.events import EventBus, nothing
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX
from crm_core.outbox import OutboxHandler, OutboxRelay, RelayPolicy
from crm_core.replies import SEND_TOPIC_PREFIX, SendDispatcher
from crm_core.timers import TimerRunner
from crm_core.tracking import tracking_table
from hub import (
    email,
    first_run,
    health,
    hooks,
    leases,
    live,
    metrics,
    sip,
    site_chat,
    weekly_letter,
)
from hub.addresses import networks
from hub.api import (
    calls,
    channels,
    conversations,
    deals,
    inbound,
    inbox,
    openapi,
    parked,
    people,
    reads,
    replies,
    reports,
    search,
    session,
    tasks,
)
from hub.api import routing as routing_api
from hub.api.auth import auth_middleware
from hub.api.errors import body_limit_middleware, error_middleware, parameter_text_middleware
from hub.background import cancel_all
from hub.files import FILES, FileStores
from hub.keys import (
    CLOCK,
    DATABASE,
    EVENTS,
    INGEST,
    RELAY,
    ROUTING,
    ROUTING_FOLLOWER,
    SENDERS,
    SETTINGS,
    TOKENS,
)
from hub.roles import ROLE, ProcessRole
from hub.routing_follow import RoutingFollower
from hub.routing_setup import load_routing
from hub.sessions import LOGIN_LIMITER, LoginLimiter
from hub.settings import Settings, SettingsError
from hub.shared_state import TOKEN_GENERATION
from hub.shared_state import install as install_shared_state
from hub.signals import SIGNALS, Signals
from hub.tokens import TokenCache
from hub.web import pages

if TYPE_CHECKING:
    # asyncpg, their driver, is imported only by a hub on PostgreSQL (see _services)
    from hub.broadcast import LiveBroadcast
    from hub.relay_wake import RelayWake

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    clock: Clock | None = None,
    senders: dict[Channel, ChannelSender] | None = None,
    role: ProcessRole = ProcessRole.ALL,
) -> web.Application:
    """The hub. ``senders`` are the channels' outbound halves; connectors started with
    the app add theirs to ``app[SENDERS]`` (tests may pass their own). ``role``: all of it
    (``omnihub run``), or its web or worker half (scaled mode, see hub/roles.py)."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            error_middleware,
            body_limit_middleware,
            parameter_text_middleware,
            auth_middleware,
        ],
    )
    app[SETTINGS] = settings
    networks(settings.trusted_proxies)  # a bad value stops the start, naming the setting
    _zone(settings.timezone)
    tracking_table(settings.tracking_numbers, settings.default_region)  # the same
    app[ROLE] = role
    app[CLOCK] = clock or SystemClock()
    app[SENDERS] = senders if senders is not None else {}
    app[ROUTING] = load_routing(settings)  # a bad file stops the start, with its reason
    app[FILES] = FileStores(settings.media_dir)
    app[LOGIN_LIMITER] = LoginLimiter(
        settings.login_attempts, timedelta(minutes=settings.login_window_minutes)
    )
    install_shared_state(app)  # with redis_url: the login brake and token revocations shared
    app.cleanup_ctx.append(_services)
    if role.runs_background:
        app.cleanup_ctx.append(_outbox_relay)
        app.cleanup_ctx.append(_timers)
    app.cleanup_ctx.append(_routing_follower)  # every process ingests: each follows routing
    leases.install(app)  # with redis_url: one poller per channel account (before the channels)
    health.install(app)  # the channels report their state to it (before the channels)
    metrics.install(app)  # GET /metrics
    app.router.add_get("/healthz", healthz)
    if role.serves_api:
        app.router.add_routes(inbound.routes)
        app.router.add_routes(reads.routes)
        app.router.add_routes(deals.routes)
        app.router.add_routes(replies.routes)
        app.router.add_routes(tasks.routes)
        app.router.add_routes(calls.routes)
        app.router.add_routes(routing_api.routes)
        app.router.add_routes(openapi.routes)
        app.router.add_routes(session.routes)
        app.router.add_routes(inbox.routes)
        app.router.add_routes(conversations.routes)
        app.router.add_routes(live.routes)
        app.router.add_routes(people.routes)
        app.router.add_routes(parked.routes)
        app.router.add_routes(channels.routes)
        app.router.add_routes(reports.routes)
        app.router.add_routes(search.routes)
    if "telegram" in settings.channels:
        # aiogram takes seconds to import: only a hub with bots (not every CLI command,
        # nor a hub without Telegram) pays for it.
        from hub import telegram

        telegram.install(app)
    hooks.install(app)
    email.install(app)
    site_chat.install(app)  # after email: a widget may mail replies from a mailbox
    weekly_letter.install(app)  # after email: the Monday letter goes from a mailbox
    if role.runs_background:
        sip.install(app)  # the lines' user agent binds its ports: in one role only
    if role.serves_api:
        first_run.install(app)  # no admin yet: the one-time setup link, in the log
        pages.install(app)  # the inbox UI: pages, /static/, their security headers
    return app


def _zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError(f"timezone: unknown time zone {name!r} (e.g. Europe/Moscow)") from exc


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    db = Database(settings.database_url)
    events = EventBus()
    # PostgreSQL: the relay announces events to every process's bus (hub/broadcast.py).
    broadcast: LiveBroadcast | None = None
    if not db.is_sqlite:
        from hub.broadcast import LiveBroadcast

        broadcast = LiveBroadcast(settings.database_url, events)
    senders = app[SENDERS]
    handlers: dict[str, OutboxHandler] = {
        EVENTS_TOPIC: nothing,
        LEGACY_EVENT_TOPIC_PREFIX: nothing,
        SEND_TOPIC_PREFIX: SendDispatcher(db, app[CLOCK], senders, settings.outbox_max_attempts),
        **hooks.relay_handlers(app, db, nothing),
        **weekly_letter.relay_handlers(app),
    }
    # The live sockets hear of each events row first, in the relay's order; the webhooks'
    # fan-out (which waits on the database) comes after.
    first = events.first if broadcast is None else broadcast.announcing
    for topic in (EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX):
        handlers[topic] = first(handlers[topic])
    relay = OutboxRelay(
        db,
        app[CLOCK],
        handlers,
        RelayPolicy(
            max_attempts=settings.outbox_max_attempts, idle_poll=settings.outbox_poll_seconds
        ),
    )
    policy = IngestPolicy(
        default_region=settings.default_region,
        default_funnel=settings.default_funnel,
        funnel_by_channel=settings.funnel_by_channel,
        first_task_due=timedelta(minutes=settings.first_task_due_minutes),
        tracking_numbers=tracking_table(settings.tracking_numbers, settings.default_region),
    )
    app[DATABASE] = db
    app[EVENTS] = events
    app[SIGNALS] = Signals(db, events)
    app[RELAY] = relay
    routing = app[ROUTING]
    app[INGEST] = IngestService(
        db,
        app[CLOCK],
        policy,
        router=routing.route,
        automation=routing.automation,
        on_commit=relay.wake,
    )
    follower = RoutingFollower(db, routing, app[INGEST], settings.routing_poll_seconds)
    await follower.refresh()  # a restarted hub keeps the last version stored
    app[ROUTING_FOLLOWER] = follower
    app[TOKENS] = TokenCache(db, settings.token_cache_seconds, app.get(TOKEN_GENERATION))
    log.info("database: %s (%s)", db.dialect, "embedded" if db.is_sqlite else "server")
    # PostgreSQL: a commit in one process wakes the relays of all (hub/relay_wake.py).
    waker: RelayWake | None = None
    if not db.is_sqlite:
        from hub.relay_wake import RelayWake

        waker = RelayWake(settings.database_url, relay.wake_here)
    if waker is not None:
        relay.tell_others = waker.tell_others
        await waker.start()
    if broadcast is not None:
        await broadcast.start()
    yield
    if broadcast is not None:
        await broadcast.close()
    if waker is not None:
        await waker.close()
    await db.dispose()


async def _outbox_relay(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[RELAY].run_forever(), name="outbox-relay")
    yield
    await cancel_all([task])


async def _timers(app: web.Application) -> AsyncIterator[None]:
    routing = app[ROUTING]
    runner = TimerRunner(
        app[DATABASE], app[CLOCK], lambda: routing.config, app[SETTINGS].timer_poll_seconds
    )
    task = asyncio.create_task(runner.run_forever(), name="timers")
    yield
    await cancel_all([task])


async def _routing_follower(app: web.Application) -> AsyncIterator[None]:
    """Other processes may store a newer routing; follow it (see hub/routing_follow.py)."""
    task = asyncio.create_task(app[ROUTING_FOLLOWER].run_forever(), name="routing-follower")
    yield
    await cancel_all([task])


async def healthz(request: web.Request) -> web.Response:
    await request.app[DATABASE].read(lambda session: session.execute(text("SELECT 1")))
    body: dict[str, object] = {"status": "ok", "database": request.app[DATABASE].dialect}
    if request.query.get("details") == "1":  # names and states of what is down, no more
        body["channels_down"] = await channels.down(request.app)
    return web.json_response(body)
