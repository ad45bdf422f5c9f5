"""One update, handled the same way whichever way it came (polling or webhook)."""

from __future__ import annotations

import logging
from dataclasses import replace

from aiogram import Bot
from aiogram.types import Update

from connectors.telegram.config import BotConfig
from connectors.telegram.mapping import EditedMessage, NewMessage, map_update
from connectors.telegram.media import Fetched, MediaFetcher
from connectors.telegram.refetch import LateFile, LateFileLedger, where
from crm_core.contracts import Ingestor, IngestResult

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "edited_message")


class UpdateHandler:
    """Maps an update and commits it through the core; returns only once it is durable."""

    def __init__(
        self,
        config: BotConfig,
        bot: Bot,
        ingestor: Ingestor,
        fetcher: MediaFetcher,
        late: LateFileLedger | None = None,
    ) -> None:
        self.config = config
        self.bot = bot
        self._ingestor = ingestor
        self._fetcher = fetcher
        self._late = late  # where files that may heal wait for another attempt

    async def handle(self, update: Update) -> None:
        action = map_update(update, self.config)
        if action is None:
            log.debug("bot %s: update %d is not kept", self.config.key, update.update_id)
            return
        if isinstance(action, EditedMessage):
            if await self._ingestor.edit(action.edit):
                return
            action = action.fallback  # the original never reached us: keep the edited text
        await self._store(action, update.update_id)

    async def _store(self, new: NewMessage, update_id: int) -> None:
        message = new.message
        label = where(self.config.key, message.external_id, update_id)
        fetched = [await self._fetcher.attempt(self.bot, ref, label) for ref in new.files]
        if fetched:
            message = replace(message, attachments=tuple(f.attachment for f in fetched))
        try:
            result = await self._ingestor.ingest(message)
        except ValueError as exc:
            # The core refused a part that the client or the configuration controls (a
            # shared phone it cannot read, a deep link to a funnel that does not exist):
            # keep the message with the Telegram identity and the default funnel rather
            # than lose it.
            plain = replace(message, identities=message.identities[:1], funnel=None)
            if plain == message:
                log.warning("%s: refused: %s", label, exc)
                return
            log.warning("%s: %s; stored without it", label, exc)
            result = await self._ingestor.ingest(plain)
        await self._later(new, fetched, result)

    async def _later(self, new: NewMessage, fetched: list[Fetched], result: IngestResult) -> None:
        """Hand the files that may heal to the ledger, before the update is confirmed."""
        if self._late is None:
            return
        for index, attempt in enumerate(fetched):
            failure = attempt.attachment.failure
            if failure is None or not attempt.healable:
                continue
            file = LateFile(
                self.config.key,
                result.message_id,
                index,
                new.message.external_id,
                new.files[index],
            )
            await self._late.failed(file.bot, file.item_key, failure, True, file.detail())
