"""Files clients send: fetched through ``getFile`` within a size limit, kept by content."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from connectors.store import BlobStore
from connectors.telegram.client import redact
from crm_core.contracts import Attachment

log = logging.getLogger(__name__)


class MediaDownloadError(Exception):
    """A file could not be fetched; the message is kept with the attachment marked failed."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary  # a 5xx, a timeout or a broken connection; may heal


class FileTooLargeError(Exception):
    """The file is over the configured limit; it is not downloaded."""


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file a message points at, before it is fetched."""

    file_id: str
    name: str
    content_type: str
    size: int | None


@dataclass(frozen=True, slots=True)
class Fetched:
    """One attempt at a file: the attachment (stored, or marked failed), and whether a
    failure may heal (the Bot API's 5xx, a timeout, a broken connection) so that a later
    attempt is worth it; a 4xx ("file is gone") or a file over the limit is not."""

    attachment: Attachment
    healable: bool = False


class MediaFetcher:
    """Downloads a message's files through ``getFile`` into the store."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def fetch(self, bot: Bot, ref: FileRef, where: str = "") -> Attachment:
        """The stored attachment; one that cannot be fetched is kept as metadata with the
        reason, so that the message (and the rest of the batch) is stored at once."""
        return (await self.attempt(bot, ref, where)).attachment

    async def attempt(self, bot: Bot, ref: FileRef, where: str = "") -> Fetched:
        """Like :meth:`fetch`, saying whether a failure may heal. ``where`` names the
        bot and the message in the log lines (never the token)."""
        where = where or f"bot {bot.id}"
        try:
            data = await self._download(bot, ref)
        except FileTooLargeError:
            log.info(
                "%s: file %s is over %d bytes; kept as a reference", where, ref.name, self.max_bytes
            )
            return Fetched(self._failed(ref, f"the file is over the {self.max_bytes}-byte limit"))
        except TelegramAPIError as exc:
            # e.g. "file is too big" from the public Bot API, or a file that expired
            reason = redact(f"getFile failed: {exc}", bot.token)
            healable = isinstance(
                exc, TelegramServerError | TelegramNetworkError | TelegramRetryAfter
            )
            log.warning("%s: cannot fetch file %s: %s", where, ref.name, reason)
            return Fetched(self._failed(ref, reason), healable)
        except MediaDownloadError as exc:
            log.warning("%s: cannot fetch file %s: %s", where, ref.name, exc.reason)
            return Fetched(self._failed(ref, exc.reason), exc.temporary)
        key = await self.store.put(data, "telegram")
        return Fetched(Attachment(ref.name, ref.content_type, len(data), storage_key=key))

    @staticmethod
    def _failed(ref: FileRef, reason: str) -> Attachment:
        return Attachment(ref.name, ref.content_type, ref.size or 0, failure=reason)

    async def _download(self, bot: Bot, ref: FileRef) -> bytes:
        if ref.size is not None and ref.size > self.max_bytes:
            raise FileTooLargeError(ref.name)
        file = await bot.get_file(ref.file_id)
        if file.file_size is not None and file.file_size > self.max_bytes:
            raise FileTooLargeError(ref.name)
        if file.file_path is None:
            raise FileTooLargeError(ref.name)
        url = bot.session.api.file_url(bot.token, file.file_path)
        chunks: list[bytes] = []
        total = 0
        try:
            async for chunk in bot.session.stream_content(url, timeout=60):
                total += len(chunk)
                if total > self.max_bytes:
                    raise FileTooLargeError(ref.name)
                chunks.append(chunk)
        except aiohttp.ClientResponseError as exc:
            # the download URL carries the token: name the status only, do not chain
            reason = f"download failed: HTTP {exc.status} {exc.message}".rstrip()
            temporary = exc.status >= 500 or exc.status == 429
            raise MediaDownloadError(reason, temporary=temporary) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = redact(f"download failed: {type(exc).__name__}: {exc}", bot.token)
            raise MediaDownloadError(reason, temporary=True) from None
        return b"".join(chunks)
