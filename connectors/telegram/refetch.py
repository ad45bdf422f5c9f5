"""Files whose download failed with an error that may heal, fetched again later.

The message is stored at once with the attachment marked failed (``Attachment.failure``)
and the update is confirmed. When the failure may heal (the Bot API's 5xx, a timeout, a
broken connection) the file is handed to a :class:`LateFileLedger` (the hub's parked
items, channel ``telegram``): :meth:`Refetcher.retry_due` fetches it again after a
backoff, fills in the stored attachment when it comes, and gives up (the item stays
parked, the attachment failed) after the configured number of attempts. A 4xx ("file is
gone") or a file over the limit is never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiogram import Bot

from connectors.telegram.media import FileRef, MediaFetcher
from crm_core.contracts import Attachment

log = logging.getLogger(__name__)
POLL_SECONDS = 15.0


@dataclass(frozen=True, slots=True)
class LateFile:
    """A file of a stored message that could not be fetched yet."""

    bot: str  # the bot's key: the parked item's account
    message_id: int  # the stored message
    index: int  # the attachment's place in it
    external_id: str  # the message in Telegram, "<chat_id>:<message_id>"
    ref: FileRef

    @property
    def item_key(self) -> str:
        """The parked item's key: the message in Telegram and the file's place in it."""
        return f"{self.external_id}/{self.index}"

    def detail(self) -> dict[str, str | None]:
        return {
            "message_id": str(self.message_id),
            "attachment": str(self.index),
            "file_id": self.ref.file_id,
            "name": self.ref.name,
            "content_type": self.ref.content_type,
            "size": None if self.ref.size is None else str(self.ref.size),
        }

    @classmethod
    def from_parked(cls, bot: str, item_key: str, detail: Mapping[str, Any]) -> LateFile | None:
        """The file a parked item stands for; None when its detail is not readable."""
        try:
            size = detail.get("size")
            ref = FileRef(
                str(detail["file_id"]),
                str(detail.get("name") or "file"),
                str(detail.get("content_type") or "application/octet-stream"),
                int(size) if size is not None else None,
            )
            external_id = item_key.rpartition("/")[0]
            return cls(bot, int(detail["message_id"]), int(detail["attachment"]), external_id, ref)
        except (KeyError, TypeError, ValueError):
            return None


class DueFile(Protocol):
    """A parked item claimed for one more attempt (``crm_core.parked.Due``)."""

    @property
    def account(self) -> str: ...
    @property
    def item_key(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def detail(self) -> Mapping[str, Any]: ...


class LateFileLedger(Protocol):
    """Where files wait for another attempt (``crm_core.late_files.LateFiles``)."""

    async def failed(
        self,
        account: str,
        item_key: str,
        reason: str,
        healable: bool,
        detail: Mapping[str, str | None],
    ) -> bool:
        """Record one more failure; True while the item will be tried again."""
        ...

    async def due(self) -> Sequence[DueFile]:
        """Items due for another attempt, claimed for this process."""
        ...

    async def fetched(
        self, account: str, item_key: str, message_id: int, index: int, attachment: Attachment
    ) -> bool:
        """Fill in the stored attachment and forget the item; False if nothing changed."""
        ...


def where(bot: str, external_id: str, update_id: int | None = None) -> str:
    """How log lines name a message: its bot, its Telegram id and, if known, its update."""
    update = f" (update {update_id})" if update_id is not None else ""
    return f"bot {bot}: message {external_id}{update}"


@dataclass(frozen=True, slots=True)
class Refetcher:
    """Fetches the files that are due again; run it where the pollers run."""

    fetcher: MediaFetcher
    bots: Mapping[str, Bot]
    ledger: LateFileLedger

    async def retry_due(self) -> int:
        """One more attempt at each file that is due; returns how many were stored."""
        stored = 0
        for item in await self.ledger.due():
            file = LateFile.from_parked(item.account, item.item_key, item.detail)
            bot = self.bots.get(item.account)
            if file is None or bot is None:
                why = "the bot is no longer configured" if bot is None else "unreadable detail"
                await self.ledger.failed(item.account, item.item_key, why, False, item.detail)
                log.warning("bot %s: file %s parked: %s", item.account, item.item_key, why)
                continue
            label = where(file.bot, file.external_id)
            fetched = await self.fetcher.attempt(bot, file.ref, label)
            attachment = fetched.attachment
            if attachment.failure is None:
                await self.ledger.fetched(
                    file.bot, file.item_key, file.message_id, file.index, attachment
                )
                log.info(
                    "%s: file %s stored on attempt %d", label, file.ref.name, item.attempts + 1
                )
                stored += 1
                continue
            retrying = await self.ledger.failed(
                file.bot, file.item_key, attachment.failure, fetched.healable, file.detail()
            )
            log.warning(
                "%s: file %s still not fetched (attempt %d), %s",
                label,
                file.ref.name,
                item.attempts + 1,
                "retried later" if retrying else "parked",
            )
        return stored

    async def run_forever(self, poll_seconds: float = POLL_SECONDS) -> None:
        while True:
            try:
                await self.retry_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the database away for a moment: try again at the next poll
                log.exception("telegram: fetching files again failed")
            await asyncio.sleep(poll_seconds)
