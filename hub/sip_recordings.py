"""The retention of the SIP lines' call recordings: a loop in the background role.

Every hour (and once at start) each line whose ``recording_retention_days`` is not 0
deletes from the file store the recordings of its calls that started longer ago than
that, and marks them removed on the call and its message (:mod:`crm_core.recordings`).
Time is the hub's clock (tests move it). Passes in several processes at once are
harmless: a file already deleted and a record already marked are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from functools import partial

from aiohttp import web
from sqlalchemy.orm import Session

from connectors.sip.config import LineConfig
from connectors.store import FileStore
from crm_core.clock import Clock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.recordings import StoredRecording, expired, mark_removed
from hub.background import cancel_all
from hub.keys import CLOCK, DATABASE

log = logging.getLogger(__name__)
ACTOR = "system:recordings"
POLL_SECONDS = 3600.0


class RecordingRetention:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        store: FileStore,
        lines: tuple[LineConfig, ...],
        poll: float = POLL_SECONDS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._store = store
        self._lines = tuple(line for line in lines if line.recording_retention_days > 0)
        self._poll = poll

    @property
    def needed(self) -> bool:
        """Some line removes its recordings (0 days everywhere: kept forever, no loop)."""
        return bool(self._lines)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("sip: the recordings' retention pass failed; retrying")
            await asyncio.sleep(self._poll)

    async def run_once(self) -> int:
        """Remove what is due now; answers how many recordings were removed."""
        removed = 0
        for line in self._lines:
            days = line.recording_retention_days
            before = self._clock.now() - timedelta(days=days)
            reason = f"removed after {days} days (the line's recording_retention_days)"
            while True:
                due = await self._db.read(partial(expired, line=line.key, before=before))
                if not due:
                    break
                for item in due:
                    await self._delete(item)
                changed = await self._db.write(
                    partial(_mark, batch=due, reason=reason, now=self._clock.now())
                )
                removed += changed
                if not changed:
                    break  # another process marked them: the next pass starts afresh
        if removed:
            log.info("sip: %d call recording(s) removed after their retention", removed)
        return removed

    async def _delete(self, item: StoredRecording) -> None:
        if item.storage_key is None:
            return
        try:
            await self._store.delete(item.storage_key)
        except ValueError:
            log.warning(
                "sip: call %d: recording key %r is not the store's", item.call_id, item.storage_key
            )


def _mark(session: Session, batch: list[StoredRecording], reason: str, now: datetime) -> int:
    journal = Journal(ACTOR, now)
    changed = mark_removed(session, journal, batch, reason)
    journal.flush(session)
    return changed


def install(app: web.Application, store: FileStore, lines: tuple[LineConfig, ...]) -> None:
    """Run the retention loop in this (background) process, when a line needs it."""
    if not any(line.recording_retention_days > 0 for line in lines):
        return  # every line keeps its recordings forever

    async def run(app: web.Application) -> AsyncIterator[None]:
        retention = RecordingRetention(app[DATABASE], app[CLOCK], store, lines)
        task = asyncio.create_task(retention.run_forever(), name="sip-recording-retention")
        yield
        await cancel_all([task])

    app.cleanup_ctx.append(run)
