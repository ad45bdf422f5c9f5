"""Reading a mailbox folder: catch up in batches, then IDLE (or poll), reconnect with backoff.

The checkpoint ``"<UIDVALIDITY>:<UID>"`` under the folder's name is written with each
stored message. When UIDVALIDITY changes, the folder is read again from the start:
Message-IDs (the messages' external ids) make that resync create no duplicates.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioimaplib import STOP_WAIT_SERVER_PUSH

from connectors.email import imap
from connectors.email.config import MailboxConfig
from connectors.email.intake import MailIntake, Outcome
from crm_core.contracts import Checkpoint, Ingestor
from crm_core.enums import Channel

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 1.0
    longest: float = 300.0

    def delay(self, failures: int) -> float:
        base: float = min(self.longest, self.first * 2 ** max(0, failures - 1))
        return base * random.uniform(0.8, 1.2)  # noqa: S311 (jitter, not a secret)


class MailboxReader:
    def __init__(
        self,
        mailbox: MailboxConfig,
        ingestor: Ingestor,
        intake: MailIntake,
        backoff: Backoff = Backoff(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        on_status: Callable[[str, str | None], None] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.ingestor = ingestor
        self.intake = intake
        self.backoff = backoff
        self.sleep = sleep
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        # ``(state, error)``: "connected" after a catch-up, "retrying" with the error
        # (the hub keeps it for its channels' health; the hub removes the password)
        self._on_status = on_status
        # A catch-up went through since the last failure: the backoff starts over.
        self._caught_up = False
        # (UIDVALIDITY, UID) read in this process: mail that is not stored (auto-replies,
        # bounces) leaves the stored checkpoint behind and is not fetched again each time.
        self._read_up_to: tuple[int, int] | None = None

    @property
    def folder(self) -> str:
        return self.mailbox.folder

    async def run_forever(self) -> None:
        failures = 0
        while True:
            try:
                async with imap.session(self.mailbox.imap) as client:
                    uidvalidity = await imap.select(client, self.folder)
                    await self._follow(client, uidvalidity)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures = 1 if self._caught_up else failures + 1
                self._caught_up = False
                delay = self.backoff.delay(failures)
                log.warning(
                    "mailbox %s: %s: %s; reconnecting in %.0f s",
                    self.mailbox.key,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                if self._on_status is not None:
                    self._on_status("retrying", f"{type(exc).__name__}: {exc}")
                await self.sleep(delay)

    async def _follow(self, client: Any, uidvalidity: int) -> None:
        idle = "IDLE" in await imap.capabilities(client)
        new_mail = imap.watch_new_mail(client)
        while True:
            new_mail.clear()
            await self.catch_up(client, uidvalidity)
            if new_mail.is_set():
                continue  # mail came during the catch-up: read it before waiting
            if idle:
                await self._idle(client, new_mail)
            else:
                await self.sleep(self.mailbox.poll_seconds)

    async def _idle(self, client: Any, new_mail: asyncio.Event) -> None:
        """Wait for new mail; IDLE is re-issued after ``idle_seconds`` (< 29 minutes)."""
        task = await client.idle_start(timeout=self.mailbox.idle_seconds)
        try:
            while not new_mail.is_set():
                push = asyncio.ensure_future(
                    client.wait_server_push(timeout=self.mailbox.idle_seconds + 60)
                )
                seen = asyncio.ensure_future(new_mail.wait())
                try:
                    await asyncio.wait({push, seen}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    seen.cancel()
                if not push.done():
                    push.cancel()
                    return
                pushed = push.result()
                if pushed == STOP_WAIT_SERVER_PUSH:
                    return
                lines = [bytes(x) for x in pushed if isinstance(x, bytes | bytearray)]
                if any(b"EXISTS" in line or b"BYE" in line for line in lines):
                    return
        finally:
            client.idle_done()
            await asyncio.wait_for(task, 30)

    async def last_uid(self, uidvalidity: int) -> int:
        stored = await self.ingestor.checkpoint(Channel.EMAIL, self.mailbox.key, self.folder)
        if stored is None:
            return 0
        validity, _, uid = stored.partition(":")
        if validity != str(uidvalidity):
            log.warning(
                "mailbox %s/%s: UIDVALIDITY changed (%s -> %s): reading the folder again",
                self.mailbox.key,
                self.folder,
                validity,
                uidvalidity,
            )
            return 0
        return int(uid)

    async def catch_up(self, client: Any, uidvalidity: int) -> int:
        """Take everything after the checkpoint, in batches; answers how many were read."""
        last = await self.last_uid(uidvalidity)
        if self._read_up_to is not None and self._read_up_to[0] == uidvalidity:
            last = max(last, self._read_up_to[1])
        uids = await imap.uids_after(client, last)
        if uids:
            log.info("mailbox %s/%s: %d new", self.mailbox.key, self.folder, len(uids))
        size = max(1, self.mailbox.batch_size)
        for start in range(0, len(uids), size):
            batch = uids[start : start + size]
            fetched = await imap.fetch(client, batch)
            for uid in batch:
                raw = fetched.get(uid)
                if raw is None:  # expunged between SEARCH and FETCH
                    continue
                checkpoint = Checkpoint(self.folder, f"{uidvalidity}:{uid}")
                outcome = await self.intake.accept(raw, checkpoint)
                self.counts[outcome] += 1
                self._read_up_to = (uidvalidity, uid)
        self._caught_up = True
        if self._on_status is not None:
            self._on_status("connected", None)
        return len(uids)
