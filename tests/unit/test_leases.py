"""The lease keeper (hub/leases.py) over an in-memory store: one holder, takeover, fencing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest

from hub.leases import KEY_PREFIX, Leases

TTL = 0.5  # seconds: short, so that takeovers happen within the test
# Bounds below are loose: a loaded machine delays every wake-up.


class MemoryStore:
    """What Redis does for a lease: SET NX PX, compare-and-renew, compare-and-delete."""

    def __init__(self) -> None:
        self.keys: dict[str, tuple[str, float]] = {}
        self.failing = False  # the store is unreachable
        self.renewals = 0

    def holder(self, key: str) -> str | None:
        found = self.keys.get(key)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def _check(self) -> None:
        if self.failing:
            raise ConnectionError("store unreachable")

    async def acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        self._check()
        if self.holder(key) is not None:
            return False
        self.keys[key] = (token, time.monotonic() + ttl_ms / 1000)
        return True

    async def renew(self, key: str, token: str, ttl_ms: int) -> bool:
        self._check()
        self.renewals += 1
        if self.holder(key) != token:
            return False
        self.keys[key] = (token, time.monotonic() + ttl_ms / 1000)
        return True

    async def release(self, key: str, token: str) -> None:
        self._check()
        if self.holder(key) == token:
            del self.keys[key]


class Loop:
    """A polling loop that records whether it is running."""

    def __init__(self) -> None:
        self.running = False
        self.started = 0
        self.stopped = 0

    async def __call__(self) -> None:
        self.running = True
        self.started += 1
        try:
            await asyncio.Event().wait()
        finally:
            self.running = False
            self.stopped += 1


async def _until(check: Callable[[], bool], seconds: float = 3.0) -> float:
    """Waits until ``check()``; answers how long it took."""
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > seconds:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _start(leases: Leases, body: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
    return asyncio.create_task(leases.run("telegram:1", body))


async def test_one_holder_runs_and_keeps_the_lease_by_renewing() -> None:
    store = MemoryStore()
    first, second = Loop(), Loop()
    a, b = _start(Leases(store, TTL), first), _start(Leases(store, TTL), second)
    await _until(lambda: first.running or second.running)
    await asyncio.sleep(TTL * 3)  # several lease times: renewals keep the holder
    assert first.running != second.running
    assert first.started + second.started == 1
    assert store.renewals >= 5
    await _stop(a, b)
    assert not first.running
    assert not second.running


async def test_a_clean_stop_frees_the_lease_at_once() -> None:
    store = MemoryStore()
    first, second = Loop(), Loop()
    a = _start(Leases(store, TTL), first)
    await _until(lambda: first.running)
    b = _start(Leases(store, TTL), second)
    await _stop(a)
    assert store.holder(KEY_PREFIX + "telegram:1") is None
    # the waiting worker retries every ttl / 5
    assert await _until(lambda: second.running) < TTL
    await _stop(b)


async def test_a_dead_owner_is_taken_over_within_the_lease_time() -> None:
    store = MemoryStore()
    first, second = Loop(), Loop()
    owner = Leases(store, TTL)
    a = _start(owner, first)
    await _until(lambda: first.running)
    b = _start(Leases(store, TTL), second)
    # the owner "dies": it neither renews nor releases (like kill -9)
    store.failing = True
    await _stop(a)
    store.failing = False
    assert await _until(lambda: second.running) < TTL * 2  # TTL, then a retry (TTL / 5)
    await _stop(b)


async def test_the_holder_stops_the_moment_another_token_holds_the_key() -> None:
    store = MemoryStore()
    loop = Loop()
    task = _start(Leases(store, TTL), loop)
    await _until(lambda: loop.running)
    store.keys[KEY_PREFIX + "telegram:1"] = ("someone-else", time.monotonic() + 60)
    assert await _until(lambda: not loop.running) < TTL  # at the next renewal (TTL / 3)
    await asyncio.sleep(TTL)
    assert loop.started == 1  # it waits for the key, held by the other
    await _stop(task)


async def test_an_unreachable_store_stops_the_loop_before_the_lease_could_expire() -> None:
    store = MemoryStore()
    loop = Loop()
    task = _start(Leases(store, TTL), loop)
    await _until(lambda: loop.running)
    store.failing = True
    expires = store.keys[KEY_PREFIX + "telegram:1"][1]  # no renewal goes through any more
    await _until(lambda: not loop.running)
    assert time.monotonic() < expires  # stopped before another worker could take the key
    store.failing = False
    await _until(lambda: loop.running)  # and takes it again once the store is back
    await _stop(task)


async def test_a_body_that_fails_releases_the_lease_and_raises() -> None:
    store = MemoryStore()

    async def broken() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await Leases(store, TTL).run("email:a", broken)
    assert store.holder(KEY_PREFIX + "email:a") is None


def test_the_lease_time_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Leases(MemoryStore(), 0)
