"""The lease store on a real Redis: SET NX PX, compare-and-renew, compare-and-delete."""

from __future__ import annotations

import asyncio
import uuid

from redis.asyncio import Redis

from hub.leases import KEY_PREFIX, Leases, RedisLeaseStore


async def test_only_the_token_holder_renews_or_releases(redis: Redis) -> None:
    store = RedisLeaseStore(redis)
    key = f"{KEY_PREFIX}test:{uuid.uuid4().hex}"
    try:
        assert await store.acquire(key, "a", 5_000)
        assert not await store.acquire(key, "b", 5_000)  # NX: one holder
        assert await store.acquire(key, "a", 5_000)  # a retry of a lost answer: still a's
        assert not await store.renew(key, "b", 5_000)
        assert await store.renew(key, "a", 60_000)
        assert 5_000 < await redis.pttl(key) <= 60_000
        await store.release(key, "b")  # not b's: stays
        assert await redis.get(key) == b"a"
        await store.release(key, "a")
        assert await redis.get(key) is None
        assert not await store.renew(key, "a", 5_000)  # gone: a renewal does not revive it
    finally:
        await redis.delete(key)


async def test_an_expired_lease_is_taken_by_the_next(redis: Redis) -> None:
    store = RedisLeaseStore(redis)
    key = f"{KEY_PREFIX}test:{uuid.uuid4().hex}"
    try:
        assert await store.acquire(key, "a", 100)
        await asyncio.sleep(0.2)
        assert await store.acquire(key, "b", 5_000)
        assert not await store.renew(key, "a", 5_000)
    finally:
        await redis.delete(key)


async def test_two_keepers_one_loop(redis: Redis) -> None:
    name = f"test:{uuid.uuid4().hex}"
    running: list[str] = []

    def body(who: str) -> asyncio.Task[None]:
        async def loop() -> None:
            running.append(who)
            try:
                await asyncio.Event().wait()
            finally:
                running.remove(who)

        return asyncio.create_task(Leases(RedisLeaseStore(redis), 0.5).run(name, loop))

    first, second = body("first"), body("second")
    try:
        await asyncio.sleep(1.5)  # three lease times
        assert len(running) == 1
        holder = running[0]
        (first if holder == "first" else second).cancel()  # a clean stop releases at once
        await asyncio.sleep(0.4)
        assert running == ["second" if holder == "first" else "first"]
    finally:
        for task in (first, second):
            task.cancel()
        await asyncio.gather(first, second, return_exceptions=True)
        await redis.delete(KEY_PREFIX + name)
