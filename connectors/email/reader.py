"""Reading a mailbox folder: catch up in batches, then IDLE (or poll), reconnect with backoff.

The checkpoint ``"<UIDVALIDITY>:<UID>"`` under the folder's name is written with each
stored message. When UIDVALIDITY changes, the folder is read again from the start:
Message-IDs (the messages' external ids) make that resync create no duplicates.

A mail whose handling raises (not the core's refusal, which :class:`MailIntake` answers
itself) is read again after the reconnect backoff. One that fails ``poison_attempts``
times in a row (counted in memory) is parked through a :class:`PoisonLedger` (channel
``email``, the mailbox's key, ``uid:<UIDVALIDITY>:<UID>``, the raw mail's key in the file
store) and the folder moves on. An admin's retry makes it due:
:meth:`MailboxReader.retry_parked` files it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioimaplib import STOP_WAIT_SERVER_PUSH

from connectors.email import imap
from connectors.email.config import MailboxConfig
from connectors.email.intake import MailIntake, Outcome
from connectors.poison import RETRY_SECONDS, PoisonLedger, reason_of
from crm_core.contracts import Checkpoint, Ingestor
from crm_core.enums import Channel

log = logging.getLogger(__name__)
UID_PREFIX = "uid:"  # the parked item's key: uid:<UIDVALIDITY>:<UID>


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
        ledger: PoisonLedger | None = None,
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
        # Where mail that keeps failing is parked; without it, such a mail is read again
        # for ever (there is nowhere durable to keep it aside).
        self._ledger = ledger
        self.failures: dict[tuple[int, int], int] = {}  # (UIDVALIDITY, UID) -> in a row
        self.parked = 0  # mails parked since start
        self._next_retry_check = 0.0

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
            if self._ledger is not None and time.monotonic() >= self._next_retry_check:
                self._next_retry_check = time.monotonic() + RETRY_SECONDS
                await self.retry_parked()
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
                try:
                    outcome = await self.intake.accept(raw, checkpoint)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if not await self._poisoned(uidvalidity, uid, raw, exc):
                        raise  # read again after the reconnect backoff
                    outcome = Outcome.PARKED
                else:
                    self.failures.pop((uidvalidity, uid), None)
                self.counts[outcome] += 1
                self._read_up_to = (uidvalidity, uid)
        self._caught_up = True
        if self._on_status is not None:
            self._on_status("connected", None)
        return len(uids)

    async def _poisoned(self, uidvalidity: int, uid: int, raw: bytes, exc: Exception) -> bool:
        """Count one more failure of the mail; True when it was parked (and is skipped)."""
        key = self.mailbox.key
        count = self.failures.get((uidvalidity, uid), 0) + 1
        self.failures[(uidvalidity, uid)] = count
        attempts = max(1, self.mailbox.poison_attempts)
        if self._ledger is None or count < attempts:
            log.warning(
                "mailbox %s/%s: uid %d failed (%d of %d): %s",
                key,
                self.folder,
                uid,
                count,
                attempts,
                type(exc).__name__,
            )
            return False
        raw_key = await self.intake.store.put(raw, "mail")
        item_key = f"{UID_PREFIX}{uidvalidity}:{uid}"
        detail = {"folder": self.folder, "uidvalidity": str(uidvalidity), "uid": str(uid)}
        await self._ledger.park(key, item_key, self._reason(exc), count, {**detail, "raw": raw_key})
        self.failures.pop((uidvalidity, uid), None)
        self.parked += 1
        log.error(
            "mailbox %s/%s: uid %d failed %d times: parked and skipped (%s)",
            key,
            self.folder,
            uid,
            count,
            type(exc).__name__,
            exc_info=exc,
        )
        return True

    def _reason(self, exc: Exception) -> str:
        reason = reason_of(exc)
        for secret in (self.mailbox.imap.password, self.mailbox.smtp.password):
            if secret:
                reason = reason.replace(secret, "***")
        return reason

    async def retry_parked(self) -> int:
        """File again the parked mails an admin retried; answers how many went through.
        One that fails again stays parked with the new reason."""
        if self._ledger is None:
            return 0
        key = self.mailbox.key
        done = 0
        for item in await self._ledger.due(key):
            if not item.item_key.startswith(UID_PREFIX):
                continue
            try:
                raw = await self.intake.store.get(str(item.detail["raw"]))
                outcome = await self.intake.accept(raw)  # no checkpoint: it is behind us
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                await self._ledger.park(key, item.item_key, self._reason(exc), 1, item.detail)
                log.warning(
                    "mailbox %s: parked %s failed again, still parked (%s)",
                    key,
                    item.item_key,
                    type(exc).__name__,
                )
                continue
            await self._ledger.taken(key, item.item_key)
            self.counts[outcome] += 1
            log.info("mailbox %s: parked %s filed on retry (%s)", key, item.item_key, outcome)
            done += 1
        return done
