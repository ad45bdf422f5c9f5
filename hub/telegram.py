"""Wiring of the Telegram connector: ``[channels.telegram]`` → bots, pollers, webhook routes,
and the ``ChannelSender`` of ``Channel.TELEGRAM`` (routed by channel account to its bot).

```toml
[channels.telegram]
media_dir = "/var/lib/omnihub/media"
poison_attempts = 5                  # an update whose handling raised this often is parked
[[channels.telegram.bots]]
key = "salesbot"
token = "123456:ABC..."
mode = "polling"                     # or "webhook" (+ secret_token, webhook_url)
api_base = "http://127.0.0.1:8081"   # a self-hosted Bot API server (optional)
[channels.telegram.bots.start_payloads.webinar_oct]
utm_source = "telegram"
utm_campaign = "webinar_oct"
funnel = "webinar"
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiogram import Bot
from aiohttp import web

from connectors.poison import RETRY_SECONDS
from connectors.telegram.client import make_bot
from connectors.telegram.config import TelegramConfig, TelegramConfigError, parse_config
from connectors.telegram.media import MediaFetcher
from connectors.telegram.poisoned import PoisonedUpdates
from connectors.telegram.polling import Poller
from connectors.telegram.refetch import Refetcher
from connectors.telegram.sender import TelegramSender
from connectors.telegram.updates import UpdateHandler
from connectors.telegram.webhook import WebhookReceiver, set_webhook
from crm_core.enums import Channel
from crm_core.late_files import LateFiles
from crm_core.poisoned import PoisonedItems
from hub.api.errors import json_error
from hub.background import cancel_all
from hub.files import FILES
from hub.health import HEALTH
from hub.keys import CLOCK, DATABASE, INGEST, RELAY, SENDERS, SETTINGS
from hub.leases import run_leased
from hub.roles import runs_background
from hub.settings import SettingsError

log = logging.getLogger(__name__)


@dataclass(slots=True)
class TelegramChannel:
    """The running connector: one aiogram ``Bot`` per configured bot."""

    config: TelegramConfig
    bots: dict[str, Bot]
    handlers: dict[str, UpdateHandler] = field(default_factory=dict)
    pollers: dict[str, Poller] = field(default_factory=dict)
    receiver: WebhookReceiver | None = None
    sender: TelegramSender | None = None
    refetcher: Refetcher | None = None


TELEGRAM = web.AppKey("telegram", TelegramChannel)


def install(app: web.Application) -> None:
    """Add the connector when ``[channels.telegram]`` is configured; a no-op otherwise."""
    table = app[SETTINGS].channels.get("telegram")
    if table is None:
        return
    try:
        config = parse_config(table)
    except TelegramConfigError as exc:
        raise SettingsError(str(exc)) from exc
    app[TELEGRAM] = TelegramChannel(config, {bot.key: make_bot(bot) for bot in config.bots})
    app.router.add_post("/hooks/telegram/{bot_key}", _webhook)
    app.cleanup_ctx.append(_run)


async def _webhook(request: web.Request) -> web.Response:
    receiver = request.app[TELEGRAM].receiver
    if receiver is None:
        return json_error(503, "unavailable", "the Telegram connector is starting")
    return await receiver.receive(request)


async def _retry_parked_forever(poisons: list[PoisonedUpdates]) -> None:
    while True:
        for poison in poisons:
            try:
                await poison.retry_parked()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: the next pass tries again
                log.exception("bot %s: retrying parked updates failed", poison.handler.config.key)
        await asyncio.sleep(RETRY_SECONDS)


async def _run(app: web.Application) -> AsyncIterator[None]:
    channel = app[TELEGRAM]
    config = channel.config
    store = app[FILES].add(config.media_dir or app[SETTINGS].media_dir)
    fetcher = MediaFetcher(store, config.max_file_bytes)
    # files that failed with an error that may heal wait as parked items (channel telegram)
    late = LateFiles(
        app[DATABASE], app[CLOCK], "telegram", config.file_retry_attempts, app[RELAY].wake
    )
    # updates that kept failing are parked (channel telegram, update:<id>) and skipped
    poisoned = PoisonedItems(app[DATABASE], app[CLOCK], "telegram", "update:")
    for bot_config in config.bots:
        channel.handlers[bot_config.key] = UpdateHandler(
            bot_config, channel.bots[bot_config.key], app[INGEST], fetcher, late
        )
    refetcher = channel.refetcher = Refetcher(fetcher, channel.bots, late)
    webhook_bots = {k: h for k, h in channel.handlers.items() if h.config.mode == "webhook"}
    poisons = {
        k: PoisonedUpdates(h, poisoned, store, config.poison_attempts)
        for k, h in webhook_bots.items()
    }
    channel.receiver = WebhookReceiver(webhook_bots, poisons)
    channel.sender = TelegramSender(channel.bots, store)
    app[SENDERS][Channel.TELEGRAM] = channel.sender
    tasks: list[asyncio.Task[None]] = []
    if runs_background(app):
        refetch = asyncio.create_task(refetcher.run_forever(), name="telegram-file-retries")
        tasks.append(refetch)
        if poisons:  # webhook bots' parked updates an admin retried (pollers retry their own)
            retries = _retry_parked_forever(list(poisons.values()))
            tasks.append(asyncio.create_task(retries, name="telegram-webhook-retries"))
    health = app[HEALTH]
    for key, handler in channel.handlers.items():
        health.register("telegram", key, secrets=(handler.bot.token, handler.config.secret_token))
        if not runs_background(app):
            continue  # a web process: webhook bots are received here, the rest by workers
        if handler.config.mode == "polling":
            reporter = health.reporter("telegram", key)
            poller = channel.pollers[key] = Poller(
                handler,
                on_status=reporter,
                ledger=poisoned,
                store=store,
                poison_attempts=config.poison_attempts,
            )
            # one poller per bot among all workers: the lease is the bot's (its id)
            lease = f"telegram:{handler.bot.id}"
            loop = run_leased(app, lease, poller.run_forever)
            tasks.append(asyncio.create_task(loop, name=f"telegram-poll-{key}"))
        elif handler.config.webhook_url:
            try:
                await set_webhook(handler, handler.config.webhook_url)
                health.report("telegram", key, "connected")
            except Exception as exc:  # logged (without the token); the hub still starts
                log.warning("bot %s: webhook not set; Telegram will not call us", key)
                health.report("telegram", key, "failing", f"setWebhook failed: {exc}")
        else:
            health.report("telegram", key, "connected")  # Telegram calls us; set by hand
    log.info("telegram: %d bot(s) started", len(channel.handlers))
    yield
    await cancel_all(tasks)
    if app[SENDERS].get(Channel.TELEGRAM) is channel.sender:
        del app[SENDERS][Channel.TELEGRAM]
    for bot in channel.bots.values():
        await bot.session.close()
