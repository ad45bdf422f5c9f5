"""Long polling: ``getUpdates``, commit each update, and only then confirm it.

The offset sent to ``getUpdates`` confirms every earlier update to Telegram, so it moves
past an update only after that update was committed. A crash in between re-delivers the
update to the next poller, and the repeat is a no-op in the core.

An update whose handling raises is tried again with the batch, after a backoff. One that
fails ``poison_attempts`` times in a row (counted here, in memory) is parked through a
:class:`PoisonLedger` (the hub's parked items: channel ``telegram``, the bot's key,
``update:<update_id>``, its JSON kept in the file store) and skipped, so that the other
clients of the bot are not kept waiting. An admin's retry makes it due:
:meth:`Poller.retry_parked` handles it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramConflictError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import Update
from pydantic import ValidationError

from connectors.poison import RETRY_SECONDS, PoisonLedger
from connectors.store import BlobStore
from connectors.telegram.client import redact
from connectors.telegram.config import DEFAULT_POISON_ATTEMPTS
from connectors.telegram.poisoned import PoisonedUpdates
from connectors.telegram.updates import ALLOWED_UPDATES, UpdateHandler

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]
# ``(state, error)`` after each round: "connected", or "retrying"/"failing" with the error
# (never the token); the hub keeps it for its channels' health.
StatusCallback = Callable[[str, str | None], None]


class Poller:
    """Consumes one bot's updates; run one per bot, in one process at a time.

    Without a ``ledger`` (and a ``store`` for the updates' JSON) an update that keeps
    failing is retried for ever: there is nowhere durable to park it."""

    def __init__(
        self,
        handler: UpdateHandler,
        *,
        batch: int = 100,
        concurrency: int = 32,
        sleep: Sleep = asyncio.sleep,
        max_backoff: float = 30.0,
        on_status: StatusCallback | None = None,
        ledger: PoisonLedger | None = None,
        store: BlobStore | None = None,
        poison_attempts: int = DEFAULT_POISON_ATTEMPTS,
    ) -> None:
        self.handler = handler
        self.batch = batch
        self.concurrency = concurrency
        self._sleep = sleep
        self._max_backoff = max_backoff
        self.offset: int | None = None
        self.committed = 0  # updates handled since start (a figure for the bench)
        self._on_status = on_status
        self.poison = (
            None
            if ledger is None or store is None
            else PoisonedUpdates(handler, ledger, store, poison_attempts)
        )
        self._next_retry_check = 0.0

    def _status(self, state: str, error: str | None = None) -> None:
        if self._on_status is not None:
            self._on_status(state, error)

    async def run_forever(self) -> None:
        config = self.handler.config
        bot = self.handler.bot
        # getUpdates is refused while a webhook is set; polling mode owns the bot.
        await self._with_retries(lambda: bot.delete_webhook(drop_pending_updates=False))
        log.info("bot %s: polling started", config.key)
        while True:
            await self._with_retries(self.poll_once)
            if self.poison is not None and time.monotonic() >= self._next_retry_check:
                self._next_retry_check = time.monotonic() + RETRY_SECONDS
                await self._with_retries(self.retry_parked)

    async def poll_once(self) -> int:
        """One ``getUpdates`` round: each update is committed before the offset moves on."""
        bot = self.handler.bot
        timeout = self.handler.config.polling_timeout
        try:
            updates: list[tuple[int, Update | None]] = [
                (u.update_id, u)
                for u in await bot.get_updates(
                    offset=self.offset,
                    limit=self.batch,
                    timeout=timeout,
                    allowed_updates=list(ALLOWED_UPDATES),
                    request_timeout=timeout + 10,
                )
            ]
        except ClientDecodeError as exc:
            updates = self._one_by_one(exc)
        await self._handle_all([u for _, u in updates if u is not None])
        if updates:
            # every update of the batch is committed (or parked): the next getUpdates
            # confirms them
            self.offset = updates[-1][0] + 1
            self.committed += len(updates)
            if self.poison is not None:
                self.poison.confirmed_below(self.offset)
        return len(updates)

    async def _handle_all(self, updates: list[Update]) -> None:
        """Chats in parallel (so that commits group), each chat's updates in order."""
        chats: dict[object, list[Update]] = {}
        for update in updates:
            carrier = update.message or update.edited_message
            key: object = carrier.chat.id if carrier is not None else ("update", update.update_id)
            chats.setdefault(key, []).append(update)
        gate = asyncio.Semaphore(self.concurrency)
        poison = self.poison

        async def one_chat(items: list[Update]) -> None:
            async with gate:
                for item in items:
                    if poison is not None and item.update_id in poison.parked_ids:
                        continue
                    try:
                        await self.handler.handle(item)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        if poison is None or not await poison.failed(item, exc):
                            raise  # the chat's later updates wait: their order is kept
                    else:
                        if poison is not None:
                            poison.succeeded(item.update_id)

        results = await asyncio.gather(
            *(one_chat(items) for items in chats.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # nothing of this batch is confirmed; repeats are no-ops

    async def retry_parked(self) -> int:
        """Handle again the parked updates an admin retried (see :class:`PoisonedUpdates`)."""
        return 0 if self.poison is None else await self.poison.retry_parked()

    def _one_by_one(self, exc: ClientDecodeError) -> list[tuple[int, Update | None]]:
        """A batch aiogram cannot read as a whole: read each update on its own, so that one
        update it does not understand cannot block the bot; that one is logged and skipped."""
        body = exc.data
        if not isinstance(body, dict) or not isinstance(body.get("result"), list):
            raise exc
        updates: list[tuple[int, Update | None]] = []
        for raw in body["result"]:
            if not isinstance(raw, dict) or not isinstance(raw.get("update_id"), int):
                raise exc
            try:
                updates.append((raw["update_id"], Update.model_validate(raw)))
            except ValidationError as error:
                log.warning(
                    "bot %s: update %d is not readable, skipped: %s",
                    self.handler.config.key,
                    raw["update_id"],
                    error.errors()[0]["loc"] if error.errors() else error,
                )
                updates.append((raw["update_id"], None))
        return updates

    async def _with_retries(self, call: Callable[[], Awaitable[object]]) -> None:
        delay = 1.0
        key = self.handler.config.key
        token = self.handler.bot.token
        while True:
            try:
                await call()
                self._status("connected")
                return
            except asyncio.CancelledError:
                raise
            except TelegramRetryAfter as exc:
                log.warning("bot %s: flood control, waiting %d s", key, exc.retry_after)
                self._status("retrying", f"flood control: retry after {exc.retry_after} s")
                await self._sleep(exc.retry_after)
            except TelegramUnauthorizedError:
                log.error("bot %s: the token was refused; polling waits %d s", key, 60)
                self._status("failing", "the bot token was refused (401 Unauthorized)")
                await self._sleep(60)
            except TelegramConflictError as exc:
                # another consumer (a webhook or a second poller) holds this bot
                log.error("bot %s: %s", key, redact(str(exc), token))
                self._status("retrying", redact(str(exc), token))
                await self._sleep(min(delay, self._max_backoff))
                delay *= 2
            except (TelegramAPIError, OSError, TimeoutError) as exc:
                log.warning(
                    "bot %s: %s; retrying in %.0f s",
                    key,
                    redact(str(exc), token),
                    min(delay, self._max_backoff),
                )
                self._status("retrying", redact(str(exc), token))
                await self._sleep(min(delay, self._max_backoff))
                delay *= 2
            except Exception as exc:
                # an update the core could not store: do not confirm it, try again later
                log.exception("bot %s: handling an update failed", key)
                self._status("retrying", f"an update could not be stored: {type(exc).__name__}")
                await self._sleep(min(delay, self._max_backoff))
                delay *= 2
