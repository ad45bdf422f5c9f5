"""A short-lived cache of checked API tokens."""

from __future__ import annotations

import time

from crm_core.access import Viewer
from crm_core.db import Database
from crm_core.people import token_digest, token_viewer


class TokenCache:
    """Remembers checked tokens for a few seconds (a revocation takes effect within that)."""

    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._known: dict[str, tuple[float, Viewer | None]] = {}

    async def owner(self, plain: str) -> Viewer | None:
        key = token_digest(plain)
        now = time.monotonic()
        hit = self._known.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self._db.read(lambda session: token_viewer(session, plain))
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (now + self._ttl, found)
        return found

    def forget(self) -> None:
        """Drop every remembered token (after a change to who they speak for)."""
        self._known.clear()
