"""Files clients send: fetched through ``getFile`` within a size limit, kept by content."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import aiohttp
from aiogram import Bot
from aiogram.exceptions import TelegramAPIError

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


class MediaFetcher:
    """Downloads a message's files through ``getFile`` into the store."""

    def __init__(self, store: BlobStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes

    async def fetch(self, bot: Bot, ref: FileRef) -> Attachment:
        """The stored attachment; one that cannot be fetched is kept as metadata with the
        reason, so that the message (and the rest of the batch) is stored at once."""
        try:
            data = await self._download(bot, ref)
        except FileTooLargeError:
            log.info("file %s is over %d bytes; kept as a reference", ref.name, self.max_bytes)
            return self._failed(ref, f"the file is over the {self.max_bytes}-byte limit")
        except TelegramAPIError as exc:
            # e.g. "file is too big" from the public Bot API, or a file that expired
            reason = redact(f"getFile failed: {exc}", bot.token)
            log.warning("cannot fetch file %s: %s", ref.name, reason)
            return self._failed(ref, reason)
        except MediaDownloadError as exc:
            log.warning("cannot fetch file %s: %s", ref.name, exc.reason)
            return self._failed(ref, exc.reason)
        key = await self.store.put(data, "telegram")
        return Attachment(ref.name, ref.content_type, len(data), storage_key=key)

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
            raise MediaDownloadError(reason, temporary=exc.status >= 500) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            reason = redact(f"download failed: {type(exc).__name__}: {exc}", bot.token)
            raise MediaDownloadError(reason, temporary=True) from None
        return b"".join(chunks)
