"""The site chat's minute counts in Redis, shared by every web process (with ``redis_url``).

Each count is ``INCR`` plus ``PEXPIRE ... NX`` in one ``MULTI``: a fixed minute from the
key's first event. An event past the limit is refused and counted (a client hammering
stays refused for its minute). When Redis cannot be reached, the process counts on its
own (a sliding minute), with a warning: a visitor is never refused because Redis is down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from aiohttp import web

from connectors.site_chat.limits import RateWindow
from hub.keys import SETTINGS
from hub.shared_state import key_prefix
from hub.site_chat import SITE_CHAT

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)
WINDOW_MS = 60_000


class RedisBrake:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._local = RateWindow()

    async def allow(self, key: str, limit: int) -> bool:
        from redis.exceptions import RedisError

        name = self._prefix + key
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.incr(name)
            pipe.pexpire(name, WINDOW_MS, nx=True)
            count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("site chat: Redis unreachable (%s); counting in this process", exc)
            return self._local.allow_now(key, limit)
        return int(count) <= limit


def install(app: web.Application) -> None:
    from redis.asyncio import Redis

    settings = app[SETTINGS]
    redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    prefix = key_prefix(settings.database_url) + "site_chat:"
    chat = app[SITE_CHAT]
    chat.sessions_by_address = RedisBrake(redis, prefix + "sessions:")
    chat.messages_by_visitor = RedisBrake(redis, prefix + "messages:")
    chat.uploads_by_visitor = RedisBrake(redis, prefix + "uploads:")

    async def close(_app: web.Application) -> AsyncIterator[None]:
        yield
        await redis.aclose()

    app.cleanup_ctx.append(close)
