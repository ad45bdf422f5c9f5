"""What the web processes share through Redis when ``redis_url`` is set.

* **The login brake** (:class:`RedisLoginLimiter`): failed logins are counted per key
  (an email, a client address) with ``INCR`` and ``PEXPIRE ... NX`` in one ``MULTI``: the
  window starts at the key's first failure and the count is dropped when it ends, so
  failures spread over any number of processes add up to the same 429 as on one. Same
  limits, same answer and ``Retry-After`` (the key's remaining time).
* **Token revocation** (:class:`RedisGeneration`): a counter bumped by every change to
  who API tokens speak for; each process's :class:`~hub.tokens.TokenCache` trusts what it
  remembers only under the counter's current value.

Keys are named ``omnihub:<database>:...``, ``<database>`` a digest of the database's
host, port and name: hubs on one database share them, hubs that only share the Redis
server do not. When Redis cannot be reached, the brake falls back to this process's own
counts and the token cache to the database, each with a warning: a login is never
refused, nor a token trusted, because Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy.engine import make_url

from hub.keys import SETTINGS
from hub.sessions import LOGIN_LIMITER, LoginLimiter

if TYPE_CHECKING:  # redis is imported only by a hub that has a redis_url
    from redis.asyncio import Redis

log = logging.getLogger(__name__)


def key_prefix(database_url: str) -> str:
    """``omnihub:<digest of host, port and database name>:``, the same in every process."""
    url = make_url(database_url)
    place = f"{url.get_backend_name()}://{url.host or ''}:{url.port or ''}/{url.database or ''}"
    return f"omnihub:{hashlib.sha256(place.encode()).hexdigest()[:16]}:"


class RedisLoginLimiter(LoginLimiter):
    """The login brake's counts in Redis (the in-process counts while Redis is away)."""

    def __init__(self, redis: Redis, prefix: str, limit: int, window: timedelta) -> None:
        super().__init__(limit, window)
        self._redis = redis
        self._prefix = prefix + "login:"
        self._window_ms = max(1, int(window.total_seconds() * 1000))

    async def retry_after(self, keys: list[tuple[str, int]], now: datetime) -> int | None:
        from redis.exceptions import RedisError

        try:
            pipe = self._redis.pipeline(transaction=False)
            for key, _factor in keys:
                pipe.get(self._prefix + key)
                pipe.pttl(self._prefix + key)
            answers = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("login brake: Redis unreachable (%s); counting in this process", exc)
            return await super().retry_after(keys, now)
        waits = []
        for (_key, factor), count, ttl_ms in zip(keys, answers[::2], answers[1::2], strict=True):
            if count is not None and int(count) >= self._limit * factor and ttl_ms != -2:
                waits.append((ttl_ms if ttl_ms > 0 else self._window_ms) / 1000)
        return max(1, math.ceil(max(waits))) if waits else None

    async def failed(self, keys: list[tuple[str, int]], now: datetime) -> None:
        from redis.exceptions import RedisError

        try:
            pipe = self._redis.pipeline(transaction=True)  # MULTI ... EXEC: both or neither
            for key, _factor in keys:
                pipe.incr(self._prefix + key)
                pipe.pexpire(self._prefix + key, self._window_ms, nx=True)
            await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("login brake: Redis unreachable (%s); counting in this process", exc)
            await super().failed(keys, now)

    async def succeeded(self, email_key: str) -> None:
        from redis.exceptions import RedisError

        await super().succeeded(email_key)
        try:
            await self._redis.delete(self._prefix + email_key)
        except (RedisError, OSError) as exc:
            log.warning("login brake: Redis unreachable (%s); count not cleared", exc)


class RedisGeneration:
    """The token cache's shared generation: ``GET`` before trusting, ``INCR`` to revoke."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._key = prefix + "tokens:generation"
        self._down = False

    async def current(self) -> int | None:
        from redis.exceptions import RedisError

        try:
            value = await self._redis.get(self._key)
        except (RedisError, OSError) as exc:
            if not self._down:
                log.warning("token cache: Redis unreachable (%s); reading every token", exc)
            self._down = True
            return None
        self._down = False
        return int(value or 0)

    async def bump(self) -> None:
        from redis.exceptions import RedisError

        try:
            await self._redis.incr(self._key)
        except (RedisError, OSError) as exc:
            # Other processes keep what they know until token_cache_seconds run out.
            log.error("token cache: Redis unreachable (%s); revocation not shared", exc)


TOKEN_GENERATION = web.AppKey("token_generation", RedisGeneration)


def install(app: web.Application) -> None:
    """With ``redis_url``: the shared login brake, and the token cache's generation."""
    settings = app[SETTINGS]
    if not settings.redis_url:
        return
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    prefix = key_prefix(settings.database_url)
    app[LOGIN_LIMITER] = RedisLoginLimiter(
        redis, prefix, settings.login_attempts, timedelta(minutes=settings.login_window_minutes)
    )
    app[TOKEN_GENERATION] = RedisGeneration(redis, prefix)

    async def close(_app: web.Application) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app.cleanup_ctx.append(close)
