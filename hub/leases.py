"""One owner per channel account: a lease in Redis for each polling loop.

Scaled mode runs the same loops (Telegram polling, IMAP readers) in every worker; a loop
runs only while its worker holds the lease of its channel account, so a bot or a mailbox
is consumed by exactly one worker, and another takes over within the lease time when the
owner dies.

The algorithm (the single-instance Redis lock with fencing values):

* take: ``SET key token NX PX ttl``, the token unique to this taking (host, pid, random);
  a worker that does not get it tries again every ``ttl / 5``;
* keep: every ``ttl / 3`` a Lua script renews the expiry only if the key still holds our
  token (compare-and-renew); the loop is cancelled the moment the script answers that the
  key is gone or holds another token, or when no renewal went through before
  ``sent + ttl * 0.8`` (Redis unreachable: the key may expire at ``sent + ttl``, so we stop
  first);
* let go: on a clean stop a Lua compare-and-delete frees the key at once; a killed owner's
  key simply expires, and a waiting worker takes it within ``ttl`` (plus one retry period).

Everything a loop commits is keyed by the event's natural key (``update_id``, Message-ID),
so the short overlap a stalled owner could cause (its last batch finishing while the next
owner starts) stores nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from aiohttp import web

from hub.background import cancel_all
from hub.keys import SETTINGS

if TYPE_CHECKING:  # redis is imported only by a hub that has a redis_url
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

KEY_PREFIX = "omnihub:lease:"
SAFETY = 0.2  # stop this share of the ttl before the key could expire

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

Body = Callable[[], Awaitable[None]]


class LeaseStore(Protocol):
    """Where leases live: Redis in production (:class:`RedisLeaseStore`), a dict in tests."""

    async def acquire(self, key: str, token: str, ttl_ms: int) -> bool: ...

    async def renew(self, key: str, token: str, ttl_ms: int) -> bool: ...

    async def release(self, key: str, token: str) -> None: ...


class RedisLeaseStore:
    """``SET NX PX`` to take, compare-and-renew and compare-and-delete in Lua."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._renew = redis.register_script(_RENEW)
        self._release = redis.register_script(_RELEASE)

    async def acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        if await self.redis.set(key, token, nx=True, px=ttl_ms):
            return True
        # a retry after an answer that was lost: the key may hold our own token already
        return await self.renew(key, token, ttl_ms)

    async def renew(self, key: str, token: str, ttl_ms: int) -> bool:
        return bool(await self._renew(keys=[key], args=[token, ttl_ms]))

    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[key], args=[token])


class Leases:
    """Runs loops under leases of one store; ``ttl`` in seconds."""

    def __init__(
        self,
        store: LeaseStore,
        ttl: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("the lease time must be positive")
        self.store = store
        self.ttl = ttl
        self._now = monotonic
        self.held: dict[str, str] = {}  # name -> token, for health and tests

    @property
    def _ttl_ms(self) -> int:
        return max(1, round(self.ttl * 1000))

    def new_token(self) -> str:
        return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}"

    async def run(self, name: str, body: Body) -> None:
        """Forever: wait for the lease ``name``, run ``body`` while it is held, cancel it the
        moment the lease is lost, wait again. Ends (re-raising) if ``body`` ends."""
        key = KEY_PREFIX + name
        while True:
            token, deadline = await self._take(key)
            self.held[name] = token
            log.info("lease %s: taken by %s", name, token)
            try:
                finished = await self._hold(name, key, token, deadline, body)
            finally:
                self.held.pop(name, None)
                await self._let_go(key, token)
            if finished:
                return

    async def _take(self, key: str) -> tuple[str, float]:
        token = self.new_token()
        while True:
            sent = self._now()
            try:
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result
                # of an inner call that just finished and swallows the task's own cancel
                async with asyncio.timeout(self.ttl):
                    acquired = await self.store.acquire(key, token, self._ttl_ms)
                if acquired:
                    return token, sent + self.ttl * (1 - SAFETY)
            except Exception as exc:  # redis.RedisError, OSError, a timeout: try again later
                log.warning("lease %s: cannot take it: %s: %s", key, type(exc).__name__, exc)
            await asyncio.sleep(self.ttl / 5)

    async def _hold(self, name: str, key: str, token: str, deadline: float, body: Body) -> bool:
        """True when ``body`` ended by itself (its exception re-raised), False when lost."""
        task: asyncio.Task[None] = asyncio.create_task(_call(body), name=f"leased-{name}")
        period = self.ttl / 3
        wait = period
        try:
            while True:
                timeout = max(0.0, min(wait, deadline - self._now()))
                done, _ = await asyncio.wait({task}, timeout=timeout)
                if done:
                    task.result()  # re-raises the body's error
                    return True
                if self._now() >= deadline:
                    log.warning("lease %s: not renewed in time; stopping", name)
                    return False
                sent = self._now()
                try:
                    async with asyncio.timeout(max(0.001, deadline - sent)):
                        ok = await self.store.renew(key, token, self._ttl_ms)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # unreachable store: retry until the deadline
                    log.warning("lease %s: renewal failed: %s: %s", name, type(exc).__name__, exc)
                    wait = period / 4
                    continue
                if not ok:
                    log.warning("lease %s: taken over by another worker; stopping", name)
                    return False
                deadline = sent + self.ttl * (1 - SAFETY)
                wait = period
        finally:
            if not task.done():
                await cancel_all([task])

    async def _let_go(self, key: str, token: str) -> None:
        try:
            async with asyncio.timeout(2.0):
                await asyncio.shield(self.store.release(key, token))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # it expires by itself
            log.info("lease %s: not released (%s); it expires", key, exc)


async def _call(body: Body) -> None:
    await body()


LEASES = web.AppKey("leases", Leases)


async def run_leased(app: web.Application, name: str, body: Body) -> None:
    """``body()`` under the lease ``name`` when the hub has leases (``redis_url``), else as is."""
    leases = app.get(LEASES)
    if leases is None:
        await body()
    else:
        await leases.run(name, body)


def install(app: web.Application) -> None:
    """With ``redis_url``: a Redis client and ``app[LEASES]`` for the channels' loops.
    Call before the channels install theirs (their loops look the leases up at start)."""
    if app[SETTINGS].redis_url:
        app.cleanup_ctx.append(_redis_leases)


async def _redis_leases(app: web.Application) -> AsyncIterator[None]:
    from redis.asyncio import Redis

    settings = app[SETTINGS]
    redis = Redis.from_url(settings.redis_url, socket_timeout=settings.lease_seconds)
    app[LEASES] = Leases(RedisLeaseStore(redis), settings.lease_seconds)
    yield
    with contextlib.suppress(Exception):
        await redis.aclose()
