"""A short-lived cache of checked API tokens."""

from __future__ import annotations

import time

from crm_core.db import Database
from crm_core.people import TokenOwner, token_digest, token_owner


class TokenCache:
    """Remembers checked tokens for a few seconds (a revocation takes effect within that)."""

    def __init__(self, db: Database, ttl_seconds: float) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._known: dict[str, tuple[float, TokenOwner | None]] = {}

    async def owner(self, plain: str) -> TokenOwner | None:
        key = token_digest(plain)
        now = time.monotonic()
        hit = self._known.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self._db.read(lambda session: token_owner(session, plain))
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (now + self._ttl, found)
        return found
