"""One-minute counters and open-socket counts, per visitor and per address.

:class:`RateWindow` counts in the process's memory (a sliding minute). With several web
processes and ``redis_url``, the hub counts messages, new visitors and uploads in Redis
instead (hub/site_chat/brakes.py), so that they add up across processes; open sockets
are counted per process (a crashed process's sockets would otherwise stay counted).
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import Protocol

WINDOW = 60.0


class Brake(Protocol):
    async def allow(self, key: str, limit: int) -> bool:
        """Count one event of ``key``; False (and not counted) past ``limit`` a minute."""
        ...


class RateWindow:
    """At most ``limit`` events per key in any sliding minute (this process's)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, cap: int = 100_000) -> None:
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._cap = cap  # keys remembered at most (oldest forgotten first)

    async def allow(self, key: str, limit: int) -> bool:
        return self.allow_now(key, limit)

    def allow_now(self, key: str, limit: int) -> bool:
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None:
            if len(self._seen) >= self._cap:
                self._seen.pop(next(iter(self._seen)))
            seen = self._seen[key] = deque()
        while seen and seen[0] <= now - WINDOW:
            seen.popleft()
        if len(seen) >= limit:
            return False
        seen.append(now)
        return True


class OpenCount:
    """How many sockets each key holds open."""

    def __init__(self) -> None:
        self._open: defaultdict[str, int] = defaultdict(int)

    def take(self, key: str, limit: int) -> bool:
        if self._open[key] >= limit:
            return False
        self._open[key] += 1
        return True

    def give_back(self, key: str) -> None:
        self._open[key] -= 1
        if self._open[key] <= 0:
            del self._open[key]

    def __len__(self) -> int:
        return sum(self._open.values())
