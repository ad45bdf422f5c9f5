"""Async token buckets: about 1 message/s per chat and 30/s per bot (Telegram's limits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Monotonic = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
_EPSILON = 1e-9


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """``await acquire(key)`` waits until ``key`` may send again.

    Each key gets ``burst`` tokens refilled at ``rate`` per second. The clock and the sleep
    are injected, so tests move time instead of waiting.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        monotonic: Monotonic = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        max_keys: int = 10_000,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._now = monotonic
        self._sleep = sleep
        self._max_keys = max_keys
        self._buckets: dict[object, _Bucket] = {}
        self._locks: dict[object, asyncio.Lock] = {}

    async def acquire(self, key: object = None) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:  # waiters of one key go in turn
            while True:
                wait = self._take(key)
                if wait <= 0:
                    return
                await self._sleep(wait)

    def _take(self, key: object) -> float:
        now = self._now()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1 - _EPSILON:  # float sums of waits land a hair below 1
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return 0.0
        return (1 - bucket.tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: they behave exactly like new ones."""
        for key, bucket in list(self._buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate >= self.burst:
                del self._buckets[key]
                lock = self._locks.get(key)
                if lock is not None and not lock.locked():
                    del self._locks[key]
