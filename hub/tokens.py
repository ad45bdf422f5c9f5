"""A short-lived cache of checked API tokens.

Without ``redis_url`` the cache is this process's own: a revocation made here clears
it at once, one made by another process takes effect within ``token_cache_seconds``.
With ``redis_url`` every change to who tokens speak for also bumps a generation
counter in Redis (:class:`hub.shared_state.RedisGeneration`), and each process checks
it before trusting what it remembers: a revocation on any process is refused on every
process from the next request on. When Redis cannot be asked, tokens are read from the
database on every request (never a stale answer).
"""

from __future__ import annotations

import time
from typing import Protocol

from crm_core.access import Viewer
from crm_core.db import Database
from crm_core.people import token_digest, token_viewer


class Generation(Protocol):
    """A counter every process shares, bumped by any change to who tokens speak for."""

    async def current(self) -> int | None:
        """The counter now, or None when it cannot be known (then nothing is trusted)."""

    async def bump(self) -> None: ...


class TokenCache:
    """Remembers checked tokens for a few seconds (a revocation takes effect within that,
    or at once on every process when a shared :class:`Generation` is given)."""

    def __init__(
        self, db: Database, ttl_seconds: float, generation: Generation | None = None
    ) -> None:
        self._db = db
        self._ttl = ttl_seconds
        self._generation = generation
        self._known: dict[str, tuple[float, int, Viewer | None]] = {}

    async def owner(self, plain: str) -> Viewer | None:
        key = token_digest(plain)
        now = time.monotonic()
        # Read before the lookup: an answer read while a change commits is filed under
        # the older generation, and the change's bump makes it unusable.
        generation = 0 if self._generation is None else await self._generation.current()
        hit = self._known.get(key)
        if hit is not None and hit[0] > now and hit[1] == generation:
            return hit[2]
        found = await self._db.read(lambda session: token_viewer(session, plain))
        if generation is None:
            return found
        if len(self._known) > 10_000:
            self._known.clear()
        self._known[key] = (now + self._ttl, generation, found)
        return found

    async def forget(self) -> None:
        """Drop every remembered token (after a change to who they speak for), here and,
        with a shared generation, on every process."""
        self._known.clear()
        if self._generation is not None:
            await self._generation.bump()
