"""Replies out: ``ChannelSender`` for Telegram, routed by channel account to its bot.

Rate limits are kept before sending (about 1 message/s per chat, 30/s per bot). A ``429``
is honoured here: the sender waits ``retry_after`` and tries again, as long as the wait fits
in ``max_inline_wait``; a longer one becomes a :class:`SendError`, and the outbox retries
later with its own backoff. ``403`` (the user blocked the bot) marks the identity
unreachable; 5xx and network errors are temporary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramRetryAfter,
)
from aiogram.types import BufferedInputFile
from aiogram.types import Message as TgMessage

from connectors.store import BlobStore
from connectors.telegram.client import redact
from connectors.telegram.ratelimit import RateLimiter
from crm_core.contracts import (
    DeliveryReceipt,
    IdentityRef,
    OutboundMessage,
    PermanentSendError,
    RecipientUnreachableError,
    SendError,
)
from crm_core.enums import IdentityKind

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


class TelegramSender:
    """Sends a manager's reply (text, files) through the bot of its channel account."""

    def __init__(
        self,
        bots: Mapping[str, Bot],
        store: BlobStore | None = None,
        *,
        per_chat: RateLimiter | None = None,
        per_bot: RateLimiter | None = None,
        sleep: Sleep = asyncio.sleep,
        max_inline_wait: float = 30.0,
    ) -> None:
        self._bots = bots
        self._store = store
        self.per_chat = per_chat or RateLimiter(rate=1.0, burst=1.0, sleep=sleep)
        self.per_bot = per_bot or RateLimiter(rate=30.0, burst=30.0, sleep=sleep)
        self._sleep = sleep
        self._max_inline_wait = max_inline_wait

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        bot = self._bots.get(message.channel_account)
        if bot is None:
            raise PermanentSendError(f"no Telegram bot {message.channel_account!r} is configured")
        chat = next((r for r in message.recipients if r.kind == IdentityKind.TELEGRAM), None)
        if chat is None or not chat.value.lstrip("-").isdigit():
            raise PermanentSendError("the contact has no Telegram chat to send to")
        chat_id = int(chat.value)
        first: TgMessage | None = None
        files = [a for a in message.attachments if a.storage_key]
        text = message.text
        if files and len(text) <= CAPTION_LIMIT:
            caption, text = text, ""
        else:
            caption = ""
        for part in _chunks(text, TEXT_LIMIT):
            sent = await self._call(bot, chat, partial(bot.send_message, chat_id, part))
            first = first or sent
        for index, attachment in enumerate(files):
            if self._store is None or attachment.storage_key is None:
                raise PermanentSendError("no attachment store is configured for files")
            try:
                data = await self._store.get(attachment.storage_key)
            except (OSError, KeyError, ValueError) as exc:
                raise PermanentSendError(f"attachment {attachment.name!r} is missing") from exc
            upload = BufferedInputFile(data, filename=attachment.name)
            note = caption if index == 0 and caption else None
            sent = await self._call(
                bot, chat, partial(bot.send_document, chat_id, upload, caption=note)
            )
            first = first or sent
        if first is None:
            raise PermanentSendError("nothing to send: no text and no stored files")
        return DeliveryReceipt(external_id=f"{first.chat.id}:{first.message_id}")

    async def _call(
        self, bot: Bot, chat: IdentityRef, request: Callable[[], Awaitable[TgMessage]]
    ) -> TgMessage:
        waited = 0.0
        while True:
            await self.per_bot.acquire(bot.id)
            await self.per_chat.acquire((bot.id, chat.value))
            try:
                return await request()
            except TelegramRetryAfter as exc:
                waited += exc.retry_after
                if waited > self._max_inline_wait:
                    raise SendError(
                        f"Telegram flood control: retry in {exc.retry_after} s"
                    ) from exc
                log.info(
                    "bot %s: chat %s: flood control, waiting %d s",
                    bot.id,
                    chat.value,
                    exc.retry_after,
                )
                await self._sleep(exc.retry_after)
            except TelegramForbiddenError as exc:
                raise RecipientUnreachableError(chat, _reason(exc, bot)) from exc
            except (TelegramBadRequest, TelegramNotFound) as exc:
                raise PermanentSendError(_reason(exc, bot)) from exc
            except (TelegramAPIError, OSError, TimeoutError) as exc:
                # 5xx, network, a refused token: the outbox retries with backoff
                raise SendError(_reason(exc, bot)) from exc


def _reason(exc: TelegramAPIError | OSError | TimeoutError, bot: Bot) -> str:
    if isinstance(exc, TelegramAPIError):
        return redact(exc.message, bot.token)
    return redact(str(exc) or type(exc).__name__, bot.token)


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []
