"""Two ``omnihub worker`` processes on one PostgreSQL + Redis and one bot: exactly one polls;
``kill -9`` of the owner mid-flood: the other takes over within the lease time, and every
update is stored exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from redis.asyncio import Redis
from sqlalchemy import distinct, func, select

from crm_core.db import Database
from crm_core.models import Message
from hub.leases import KEY_PREFIX
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user
from tests.integration.test_cli import OMNIHUB, ROOT, _free_port

LEASE_SECONDS = 3.0
FLOOD = 500

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]


@dataclass
class Callers:
    """``getUpdates`` calls by the port they came to: each worker has its own port."""

    calls: dict[int, list[float]] = field(default_factory=dict)

    def ports_since(self, since: float) -> set[int]:
        return {port for port, times in self.calls.items() if any(t >= since for t in times)}

    def first_since(self, port: int, since: float) -> float | None:
        return next((t for t in self.calls.get(port, []) if t >= since), None)


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    api_port: int  # the Bot API port this worker talks to
    health_port: int
    log: Path


@pytest.fixture
async def bot_api() -> AsyncIterator[tuple[FakeBotApi, Callers, list[int]]]:
    """The Bot API stand-in, served on two ports (one per worker), counting callers."""
    fake = FakeBotApi()
    callers = Callers()

    @web.middleware
    async def count(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.endswith("/getUpdates"):
            port = int(request.transport.get_extra_info("sockname")[1])  # type: ignore[union-attr]
            callers.calls.setdefault(port, []).append(time.monotonic())
        return await handler(request)

    fake.app.middlewares.append(count)
    runner = web.AppRunner(fake.app, access_log=None)
    await runner.setup()
    ports = [_free_port(), _free_port()]
    for port in ports:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    yield fake, callers, ports
    await runner.cleanup()


def _env(pg_url: str, redis_url: str, api_port: int, token: str, media: Path) -> dict[str, str]:
    bot = {
        "key": "salesbot",
        "token": token,
        "mode": "polling",
        "api_base": f"http://127.0.0.1:{api_port}",
        "polling_timeout": 1,
    }
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMNIHUB_DATABASE_URL": pg_url,
        "OMNIHUB_REDIS_URL": redis_url,
        "OMNIHUB_LEASE_SECONDS": str(LEASE_SECONDS),
        "OMNIHUB_OUTBOX_POLL_SECONDS": "0.5",
        "OMNIHUB_MEDIA_DIR": str(media),
        "OMNIHUB_CHANNELS": json.dumps({"telegram": {"bots": [bot]}}),
    }


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str], int], Worker]]:
    started: list[Worker] = []

    def start(env: dict[str, str], api_port: int) -> Worker:
        health = _free_port()
        log = tmp_path / f"worker-{health}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*OMNIHUB, "worker", "--port", str(health)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, api_port, health, log)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process.poll() is None:
            worker.process.send_signal(signal.SIGINT)
            try:
                worker.process.wait(15)
            except subprocess.TimeoutExpired:
                worker.process.kill()
                worker.process.wait()


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what}")
        await asyncio.sleep(0.05)


async def _stored(db: Database) -> tuple[int, int]:
    """(messages, distinct external ids) of Telegram."""

    def work(session: object) -> tuple[int, int]:
        row = session.execute(  # type: ignore[attr-defined]
            select(func.count(), func.count(distinct(Message.external_id)))
        ).one()
        return int(row[0]), int(row[1])

    return await db.read(work)


async def _flood(state: BotState, count: int, per_second: float) -> None:
    for i in range(count):
        sender = user(50_000 + i % 100, f"Client{i % 100}", None)
        state.push({"message": message(sender, 1 + i, text=f"Вопрос №{i}")})
        await asyncio.sleep(1 / per_second)


async def test_one_worker_polls_and_the_other_takes_over_after_kill_9(
    pg_url: str,
    redis: Redis,
    redis_url: str,
    bot_api: tuple[FakeBotApi, Callers, list[int]],
    start_worker: Callable[[dict[str, str], int], Worker],
    tmp_path: Path,
) -> None:
    fake, callers, ports = bot_api
    bot_id = random.randint(10**8, 10**9)
    token = f"{bot_id}:scaled-test-token"
    state = fake.add_bot(token)
    db = Database(pg_url)
    lease_key = f"{KEY_PREFIX}telegram:{bot_id}"
    try:
        workers = [
            start_worker(_env(pg_url, redis_url, port, token, tmp_path / "media"), port)
            for port in ports
        ]

        async def both_healthy() -> bool:
            for worker in workers:
                assert worker.process.poll() is None, worker.log.read_text()
            return all(_healthy(w.health_port) for w in workers)

        await _eventually(both_healthy, 60, "both workers answer /healthz")
        await _eventually(
            lambda: asyncio.sleep(0, bool(callers.calls)), 30, "a worker polls the bot"
        )
        # several lease times: exactly one worker calls getUpdates, renewing its lease
        steady = time.monotonic()
        await asyncio.sleep(LEASE_SECONDS * 2)
        pollers = callers.ports_since(steady)
        assert len(pollers) == 1, callers.calls.keys()
        (owner_port,) = pollers
        owner = next(w for w in workers if w.api_port == owner_port)
        other = next(w for w in workers if w is not owner)
        assert (await redis.get(lease_key) or b"").split(b":")[1] == str(owner.process.pid).encode()

        flood = asyncio.create_task(_flood(state, FLOOD, per_second=100))

        async def some_stored() -> bool:
            return (await _stored(db))[0] >= 150

        await _eventually(some_stored, 30, "the owner stores the first updates")
        os.kill(owner.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        owner.process.wait(10)
        at_kill = (await _stored(db))[0]

        async def taken_over() -> bool:
            return callers.first_since(other.api_port, killed) is not None

        await _eventually(taken_over, LEASE_SECONDS * 3, "the other worker takes over")
        first_call = callers.first_since(other.api_port, killed)
        assert first_call is not None
        takeover = first_call - killed
        await flood

        async def all_stored() -> bool:
            return (await _stored(db))[0] >= FLOOD

        await _eventually(all_stored, 60, "every update is stored")
        await asyncio.sleep(1.5)  # a repeat, if any, would land now
        total, distinct_ids = await _stored(db)
        print(
            f"\nkilled the owner with {at_kill}/{FLOOD} stored; the other polled "
            f"{takeover:.2f} s later (lease {LEASE_SECONDS} s); stored {total}, "
            f"distinct {distinct_ids}"
        )
        assert at_kill < FLOOD, "the flood was over before the kill: nothing was tested"
        # the key expires within the lease time; a waiting worker tries every lease / 5
        assert takeover <= LEASE_SECONDS * 1.2 + 0.5
        assert (total, distinct_ids) == (FLOOD, FLOOD)
        # the survivor polls alone
        since = time.monotonic()
        await asyncio.sleep(1.5)
        assert callers.ports_since(since) == {other.api_port}
        assert other.process.poll() is None
    finally:
        await db.dispose()
        await redis.delete(lease_key)
