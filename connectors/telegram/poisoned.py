"""Updates that keep failing, for one bot: counted, parked after ``attempts``, retried by hand.

Rule 9 of the house: one update the hub cannot handle must not hold the bot's other
clients back. The poller (``getUpdates``) and the webhook receiver (Telegram's POSTs)
both count each update's failures here (in memory, in this process); at ``attempts``
the update's JSON goes to the file store and the update is parked through the ledger
(channel ``telegram``, ``update:<update_id>``), and the channel goes on: the poller's
offset moves past it, the receiver answers 200 so that Telegram stops resending it (it
would give up after its own attempts, and the update would be lost). An admin's retry
(``POST /api/v1/parked/{id}/retry``) makes it due for :meth:`retry_parked`.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram.types import Update

from connectors.poison import PoisonLedger, reason_of
from connectors.store import BlobStore
from connectors.telegram.client import redact
from connectors.telegram.updates import UpdateHandler

log = logging.getLogger(__name__)
UPDATE_PREFIX = "update:"  # the parked item's key: update:<update_id>


class PoisonedUpdates:
    def __init__(
        self, handler: UpdateHandler, ledger: PoisonLedger, store: BlobStore, attempts: int
    ) -> None:
        self.handler = handler
        self._ledger = ledger
        self._store = store
        self.attempts = max(1, attempts)
        self.failures: dict[int, int] = {}  # update_id -> failures in a row, in this process
        self.parked = 0  # updates parked since start
        # parked, not yet confirmed (another update of the batch failed): not tried again
        self.parked_ids: set[int] = set()

    def succeeded(self, update_id: int) -> None:
        self.failures.pop(update_id, None)

    def confirmed_below(self, offset: int) -> None:
        """The updates before ``offset`` are confirmed: forget them."""
        self.failures = {k: v for k, v in self.failures.items() if k >= offset}
        self.parked_ids = {k for k in self.parked_ids if k >= offset}

    async def failed(self, update: Update, exc: Exception) -> bool:
        """Count one more failure of the update; True when it was parked (and is skipped)."""
        key = self.handler.config.key
        count = self.failures.get(update.update_id, 0) + 1
        self.failures[update.update_id] = count
        if count < self.attempts:
            log.warning(
                "bot %s: update %d failed (%d of %d): %s",
                key,
                update.update_id,
                count,
                self.attempts,
                type(exc).__name__,
            )
            return False
        raw = update.model_dump_json(exclude_none=True, by_alias=True).encode()
        stored = await self._store.put(raw, "telegram-updates")
        await self._ledger.park(
            key,
            f"{UPDATE_PREFIX}{update.update_id}",
            self._reason(exc),
            count,
            {"update_id": str(update.update_id), "raw": stored},
        )
        self.failures.pop(update.update_id, None)
        self.parked_ids.add(update.update_id)
        self.parked += 1
        log.error(
            "bot %s: update %d failed %d times: parked and skipped (%s)",
            key,
            update.update_id,
            count,
            type(exc).__name__,
            exc_info=exc,
        )
        return True

    def _reason(self, exc: Exception) -> str:
        return redact(reason_of(exc), self.handler.bot.token)

    async def retry_parked(self) -> int:
        """Handle again the parked updates an admin retried; answers how many went through.
        One that fails again stays parked with the new reason."""
        key = self.handler.config.key
        done = 0
        for item in await self._ledger.due(key):
            if not item.item_key.startswith(UPDATE_PREFIX):
                continue
            try:
                raw = await self._store.get(str(item.detail["raw"]))
                update = Update.model_validate_json(raw)
                await self.handler.handle(update)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._ledger.park(key, item.item_key, self._reason(exc), 1, item.detail)
                log.warning(
                    "bot %s: parked %s failed again, still parked (%s)",
                    key,
                    item.item_key,
                    type(exc).__name__,
                )
                continue
            await self._ledger.taken(key, item.item_key)
            log.info("bot %s: parked %s handled on retry", key, item.item_key)
            done += 1
        return done
