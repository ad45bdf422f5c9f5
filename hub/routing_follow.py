"""Keeps each hub process's routing in step with the newest stored version.

``PUT /api/v1/routing`` puts a document in force on the process that received it; every
other process sharing the database looks at the newest version id every
``routing_poll_seconds`` (one look at the primary key) and puts a newer one in force.
A stored version that cannot be used is logged once and never replaces the rules in force.
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from typing import Any

from crm_core.db import Database
from crm_core.ingest import IngestService
from crm_core.routing_store import latest_routing_version, routing_version
from hub.routing_setup import RoutingDocumentError, RoutingState

log = logging.getLogger(__name__)


class RoutingFollower:
    def __init__(
        self, db: Database, state: RoutingState, ingest: IngestService, poll_seconds: float = 5.0
    ) -> None:
        self._db = db
        self._state = state
        self._ingest = ingest
        self._poll = poll_seconds
        self._seen = 0  # the newest version looked at, whether put in force or refused

    def adopt(self, document: dict[str, Any], version: int) -> bool:
        """Put stored ``version`` in force, unless it is not newer than one already seen."""
        if version <= self._seen:
            return False
        self._seen = version
        try:
            self._state.replace(document, "api", version)
        except RoutingDocumentError as exc:
            kept = self._state.version
            log.error(
                "the stored routing version %s is not valid (%s); keeping %s",
                version,
                exc,
                self._state.source if kept is None else f"version {kept}",
            )
            return False
        self._ingest.automation = self._state.automation
        log.info("routing version %s in force", version)
        return True

    async def refresh(self) -> bool:
        """Follow a newer stored version, if there is one; True if it was put in force."""
        latest = await self._db.read(latest_routing_version)
        if latest is None or latest <= self._seen:
            return False
        document = await self._db.read(partial(routing_version, version=latest))
        return document is not None and self.adopt(document, latest)

    async def run_forever(self) -> None:
        while True:
            await asyncio.sleep(self._poll)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("routing refresh failed; retrying")
