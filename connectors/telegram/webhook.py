"""Webhook mode: Telegram POSTs each update; we answer 2xx only after it is committed."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from connectors.telegram.client import redact
from connectors.telegram.poisoned import PoisonedUpdates
from connectors.telegram.updates import ALLOWED_UPDATES, UpdateHandler
from crm_core.contracts import same_secret

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 (a header name)


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


class WebhookReceiver:
    """``POST /hooks/telegram/{bot_key}`` for the bots in webhook mode."""

    def __init__(
        self,
        handlers: Mapping[str, UpdateHandler],
        poisons: Mapping[str, PoisonedUpdates] | None = None,
    ) -> None:
        self._handlers = handlers
        self._poisons = poisons or {}

    async def receive(self, request: web.Request) -> web.Response:
        handler = self._handlers.get(request.match_info["bot_key"])
        if handler is None or handler.config.secret_token is None:
            return _error(404, "not_found", "no bot in webhook mode under this key")
        given = request.headers.get(SECRET_HEADER, "")
        if not same_secret(given, handler.config.secret_token):
            return _error(401, "unauthorized", f"missing or wrong {SECRET_HEADER}")
        if request.content_type != "application/json":
            return _error(415, "unsupported_media_type", "send the update as application/json")
        try:
            body = json.loads(await request.read())
            update = Update.model_validate(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "invalid_json", "the body is not JSON")
        except ValidationError as exc:
            errors = exc.errors()
            where = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
            return _error(400, "invalid_update", f"not a Bot API update ({where})")
        try:
            await handler.handle(update)
        except Exception as exc:
            poison = self._poisons.get(handler.config.key)
            if poison is not None and await poison.failed(update, exc):
                # parked (GET /api/v1/parked): a 200 stops Telegram resending it, before
                # it gives up on its own and the update is lost
                return web.json_response({"ok": True, "parked": True})
            # not committed: a non-2xx makes Telegram send the same update again later
            log.exception("bot %s: update %d not stored", handler.config.key, update.update_id)
            return _error(503, "unavailable", "the update could not be stored; send it again")
        if (poison := self._poisons.get(handler.config.key)) is not None:
            poison.succeeded(update.update_id)
        return web.json_response({"ok": True})


async def set_webhook(handler: UpdateHandler, url: str) -> None:
    """Point Telegram at ``url`` with this bot's secret token."""
    bot = handler.bot
    try:
        await bot.set_webhook(
            url,
            secret_token=handler.config.secret_token,
            allowed_updates=list(ALLOWED_UPDATES),
        )
    except Exception as exc:
        log.error("bot %s: setWebhook failed: %s", handler.config.key, redact(str(exc), bot.token))
        raise
