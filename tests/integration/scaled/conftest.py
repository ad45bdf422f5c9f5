"""Real Redis for scaled mode (the machine's, 127.0.0.1:6379, or ``OMNIHUB_TEST_REDIS``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from tests.conftest import IN_CI
from tests.integration.scaled.cluster import Cluster, hub_env

REDIS_URL = os.environ.get("OMNIHUB_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture
async def redis_url() -> str:
    client = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        if IN_CI:
            pytest.fail(f"Redis is needed in CI and is not reachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); install redis-server")
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


@pytest.fixture
def cluster(pg_url: str, redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """``omnihub web``/``worker`` processes on a fresh PostgreSQL database; all stopped
    (killed if they linger) at the end."""
    hubs = Cluster(tmp_path, hub_env(pg_url, redis_url, tmp_path))
    try:
        yield hubs
    finally:
        hubs.stop()
