"""``GET /metrics``: the hub's figures in the Prometheus text format (``prometheus_client``).

Each app has its own :class:`CollectorRegistry` (never the library's global one: several
apps may live in one process). Two kinds of figures:

- counted in this process: messages taken in per channel (``omnihub_messages_in_total``),
  the ingest latency (``omnihub_ingest_seconds``), refused hook requests
  (``omnihub_hooks_rejected_total``), the channel accounts' states (``omnihub_channel_up``);
- read from the database at each scrape (so the same in every process): messages sent
  out per channel and delivery status (``omnihub_messages_out_total``), the outbox backlog
  (``omnihub_outbox_pending``) and the age of its oldest pending row
  (``omnihub_outbox_oldest_pending_age_seconds``), delivery failures
  (``omnihub_delivery_failures_total``), timers due (``omnihub_timers_due``).

Who may scrape: a client address in ``metrics_allow_from`` (addresses or networks, comma
separated; default loopback only), or an admin's (or integration's) token or session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.contracts import InboundMessage, IngestResult
from crm_core.enums import DeliveryStatus, Direction, OutboxStatus
from crm_core.models import ChannelAccount, Message, Timer, WebhookDelivery
from hub.addresses import client_address, networks
from hub.api.errors import json_error
from hub.health import CONNECTED, HEALTH, ChannelHealth
from hub.keys import CLOCK, DATABASE, INGEST, SETTINGS, TOKENS
from hub.sessions import SESSION_COOKIE, cookie_session

log = logging.getLogger(__name__)
PATH = "/metrics"
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class _Figures:
    """What the database said at the last scrape."""

    messages_out: list[tuple[str, str, int]] = field(default_factory=list)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    oldest_pending_age: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    timers_due: int = 0


class _StoredFigures(Collector):
    """The database's figures and the channels' states, as of the last :meth:`refresh`."""

    def __init__(self, health: ChannelHealth | None) -> None:
        self.figures = _Figures()
        self.health = health

    def collect(self) -> Iterator[Metric]:
        f = self.figures
        out = CounterMetricFamily(
            "omnihub_messages_out",
            "Outbound messages in the database, by channel and delivery status.",
            labels=["channel", "status"],
        )
        for channel, status, count in f.messages_out:
            out.add_metric([channel, status], count)
        yield out
        pending = GaugeMetricFamily(
            "omnihub_outbox_pending",
            "Outbox rows not delivered yet, by kind (send, webhook, events).",
            labels=["kind"],
        )
        for kind, count in sorted(f.outbox_pending.items()):
            pending.add_metric([kind], count)
        yield pending
        yield GaugeMetricFamily(
            "omnihub_outbox_oldest_pending_age_seconds",
            "How long the oldest pending outbox row has waited (0 when none).",
            value=f.oldest_pending_age,
        )
        failures = CounterMetricFamily(
            "omnihub_delivery_failures",
            "Failed deliveries in the database: messages given up on, outbound webhook "
            "attempts that failed, outbox rows dead.",
            labels=["kind"],
        )
        for kind, count in sorted(f.failures.items()):
            failures.add_metric([kind], count)
        yield failures
        yield GaugeMetricFamily(
            "omnihub_timers_due", "Timers due and not fired yet.", value=f.timers_due
        )
        up = GaugeMetricFamily(
            "omnihub_channel_up",
            "1 when the channel account is connected in this process, else 0.",
            labels=["channel", "account", "state"],
        )
        for account in self.health.accounts() if self.health is not None else ():
            up.add_metric(
                [account.channel, account.account, account.state],
                1.0 if account.state == CONNECTED else 0.0,
            )
        yield up


class Metrics:
    """The app's registry and the figures counted in this process."""

    def __init__(self, health: ChannelHealth | None = None) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter(
            "omnihub_messages_in",
            "Inbound messages stored (repeats not counted), by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.repeats_in = Counter(
            "omnihub_messages_in_repeats",
            "Inbound messages that were repeats of stored ones, by channel.",
            ["channel"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "omnihub_ingest_seconds",
            "Time to store an inbound message and all it implies, by channel.",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.hooks_rejected = Counter(
            "omnihub_hooks_rejected",
            "Requests refused at /hooks/..., by kind, source and status.",
            ["kind", "source", "status"],
            registry=self.registry,
        )
        self.stored = _StoredFigures(health)
        self.registry.register(self.stored)
        self._lock: asyncio.Lock | None = None

    def ingested(self, message: InboundMessage, result: IngestResult, seconds: float) -> None:
        channel = message.channel.value
        (self.repeats_in if result.duplicate else self.messages_in).labels(channel).inc()
        self.ingest_seconds.labels(channel).observe(seconds)

    def rejected(self, kind: str, source: str, status: int) -> None:
        self.hooks_rejected.labels(kind, source, str(status)).inc()

    async def exposition(self, app: web.Application) -> bytes:
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:  # one scrape at a time: the figures are shared
            now = app[CLOCK].now()
            self.stored.figures = await app[DATABASE].read(lambda s: _read_figures(s, now))
            return generate_latest(self.registry)


def _read_figures(session: Session, now: datetime) -> _Figures:
    figures = _Figures()
    rows = session.execute(
        select(ChannelAccount.channel, Message.delivery_status, func.count())
        .join(ChannelAccount, ChannelAccount.id == Message.channel_account_id)
        .where(Message.direction == Direction.OUTBOUND.value)
        .group_by(ChannelAccount.channel, Message.delivery_status)
    )
    figures.messages_out = [(str(c), str(s), int(n)) for c, s, n in rows]
    outbox = tables.outbox
    pending = session.execute(
        select(outbox.c.topic, func.count(), func.min(outbox.c.created_at))
        .where(outbox.c.status == OutboxStatus.PENDING.value)
        .group_by(outbox.c.topic)
    )
    oldest: datetime | None = None
    for topic, count, first in pending:
        kind = str(topic).split(".", 1)[0]
        figures.outbox_pending[kind] = figures.outbox_pending.get(kind, 0) + int(count)
        first = _aware(first)
        if first is not None and (oldest is None or first < oldest):
            oldest = first
    figures.oldest_pending_age = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
    failed_messages = session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.direction == Direction.OUTBOUND.value,
            Message.delivery_status == DeliveryStatus.FAILED.value,
        )
    )
    failed_webhooks = session.scalar(
        select(func.count()).select_from(WebhookDelivery).where(WebhookDelivery.ok.is_(False))
    )
    dead = session.scalar(
        select(func.count()).select_from(outbox).where(outbox.c.status == OutboxStatus.DEAD.value)
    )
    figures.failures = {
        "message": int(failed_messages or 0),
        "webhook": int(failed_webhooks or 0),
        "outbox": int(dead or 0),
    }
    due = session.scalar(
        select(func.count()).select_from(Timer).where(Timer.fired_at.is_(None), Timer.due_at <= now)
    )
    figures.timers_due = int(due or 0)
    return figures


def _aware(value: Any) -> datetime | None:
    """An aggregate (``min``) may come back naive or as text on SQLite: read it as UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value if isinstance(value, datetime) else None


# -- access ------------------------------------------------------------------------------


async def _admitted(request: web.Request) -> web.Response | None:
    """None when the caller may scrape; else the JSON refusal."""
    settings = request.app[SETTINGS]
    address = client_address(request, networks(settings.trusted_proxies))
    if address is not None and any(address in n for n in request.app[_NETWORKS]):
        return None
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, plain = authorization.partition(" ")
        viewer = (
            await request.app[TOKENS].owner(plain.strip())
            if scheme.lower() == "bearer" and plain.strip()
            else None
        )
    elif SESSION_COOKIE in request.cookies:
        found = await cookie_session(request)
        viewer = None if found is None else found[0]
    else:
        return json_error(401, "unauthorized", "scrape from an allowed address, or as an admin")
    if viewer is None:
        return json_error(401, "unauthorized", "the token or session is not valid")
    if not viewer.is_admin:
        return json_error(403, "forbidden", "only an admin may read the metrics")
    return None


async def metrics(request: web.Request) -> web.Response:
    refused = await _admitted(request)
    if refused is not None:
        return refused
    body = await request.app[METRICS].exposition(request.app)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# -- wiring ------------------------------------------------------------------------------

METRICS = web.AppKey("metrics", Metrics)
_NETWORKS = web.AppKey("metrics_networks", tuple)


def install(app: web.Application) -> None:
    """``app[METRICS]``, ``GET /metrics``, and the timing of every ingest."""
    app[_NETWORKS] = networks(app[SETTINGS].metrics_allow_from, "metrics_allow_from")
    app[METRICS] = Metrics(app.get(HEALTH))
    app.router.add_get(PATH, metrics)
    app.cleanup_ctx.append(_measure_ingest)


async def _measure_ingest(app: web.Application) -> AsyncIterator[None]:
    """Time and count each ingest, and tell the channels' health that an item came in."""
    measured = app[METRICS]
    health = app.get(HEALTH)

    def ingested(message: InboundMessage, result: IngestResult, seconds: float) -> None:
        measured.ingested(message, result, seconds)
        if health is not None:
            health.received(message.channel.value, message.channel_account)

    app[INGEST].observe(ingested)
    yield
