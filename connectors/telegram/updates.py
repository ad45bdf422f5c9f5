"""One update, handled the same way whichever way it came (polling or webhook)."""

from __future__ import annotations

import logging
from dataclasses import replace

from aiogram import Bot
from aiogram.types import Update

from connectors.telegram.config import BotConfig
from connectors.telegram.mapping import EditedMessage, NewMessage, map_update
from connectors.telegram.media import MediaFetcher
from crm_core.contracts import Ingestor

log = logging.getLogger(__name__)

ALLOWED_UPDATES = ("message", "edited_message")


class UpdateHandler:
    """Maps an update and commits it through the core; returns only once it is durable."""

    def __init__(
        self, config: BotConfig, bot: Bot, ingestor: Ingestor, fetcher: MediaFetcher
    ) -> None:
        self.config = config
        self.bot = bot
        self._ingestor = ingestor
        self._fetcher = fetcher

    async def handle(self, update: Update) -> None:
        action = map_update(update, self.config)
        if action is None:
            log.debug("bot %s: update %d is not kept", self.config.key, update.update_id)
            return
        if isinstance(action, EditedMessage):
            if await self._ingestor.edit(action.edit):
                return
            action = action.fallback  # the original never reached us: keep the edited text
        await self._store(action)

    async def _store(self, new: NewMessage) -> None:
        message = new.message
        if new.files:
            attachments = [await self._fetcher.fetch(self.bot, ref) for ref in new.files]
            message = replace(message, attachments=tuple(attachments))
        try:
            await self._ingestor.ingest(message)
        except ValueError as exc:
            # The core refused a part that the client or the configuration controls (a
            # shared phone it cannot read, a deep link to a funnel that does not exist):
            # keep the message with the Telegram identity and the default funnel rather
            # than lose it.
            plain = replace(message, identities=message.identities[:1], funnel=None)
            if plain == message:
                log.warning(
                    "bot %s: message %s refused: %s", self.config.key, message.external_id, exc
                )
                return
            log.warning("bot %s: %s; stored without it", self.config.key, exc)
            await self._ingestor.ingest(plain)
