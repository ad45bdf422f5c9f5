"""Faults in scaled mode, on private servers (``private_servers.py``), each ending with exact
counts:

* Redis dies during a Telegram flood polled by two workers: the leases cannot be renewed,
  so polling stops within the lease time (no worker polls without a lease), the web process
  keeps answering, and once Redis is back a worker takes the lease and goes on: every
  update is stored exactly once.
* PostgreSQL restarts while a client floods ``POST /api/v1/inbound`` with retries: the web
  process recovers by itself (no restart), retries of bodies whose first attempt committed
  answer ``200`` duplicates, and each external id is stored exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.integration.scaled import private_servers, test_takeover
from tests.integration.scaled.private_servers import PrivatePostgres, PrivateRedis
from tests.integration.scaled.test_takeover import (
    LEASE_SECONDS,
    Callers,
    Worker,
    _env,
    _eventually,
    _healthy,
)
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user
from tests.integration.test_cli import OMNIHUB, ROOT, _free_port

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(120)]

TELEGRAM_FLOOD = 600
API_FLOOD = 1000
CLIENTS = 16  # concurrent API clients

# fixtures defined elsewhere
private_postgres = private_servers.private_postgres
private_redis = private_servers.private_redis
bot_api = test_takeover.bot_api
start_worker = test_takeover.start_worker


# -- helpers -------------------------------------------------------------------------------


def _plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _counts(url: str, channel: str) -> tuple[int, int]:
    """(inbound messages, distinct external ids) of one channel."""
    connection = await asyncpg.connect(_plain_dsn(url), timeout=10)
    try:
        row = await connection.fetchrow(
            "SELECT count(*) AS total, count(DISTINCT m.external_id) AS ids "
            "FROM messages m JOIN channel_accounts a ON a.id = m.channel_account_id "
            "WHERE m.direction = 'in' AND a.channel = $1",
            channel,
        )
    finally:
        await connection.close()
    assert row is not None
    return int(row["total"]), int(row["ids"])


def _omnihub(folder: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*OMNIHUB, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@dataclass
class Web:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def start_web(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Web]]:
    started: list[Web] = []

    def start(env: dict[str, str]) -> Web:
        port = _free_port()
        log = tmp_path / f"web-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*OMNIHUB, "web", "--host", "127.0.0.1", "--port", str(port)],
                cwd=tmp_path,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        web = Web(process, port, log)
        started.append(web)
        return web

    yield start
    for web in started:
        if web.process.poll() is None:
            web.process.send_signal(signal.SIGINT)
            try:
                web.process.wait(15)
            except subprocess.TimeoutExpired:
                web.process.kill()
                web.process.wait()


async def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    async def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {_tail(log)}")
        return await asyncio.to_thread(_healthy, port)

    await _eventually(up, 60, f"the process on {port} answers /healthz")


def _api_body(n: int) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_account": "fault-test",
        "external_id": f"fault-{n}",
        "sender": {
            "name": f"Client {n}",
            "identities": [{"kind": "email", "value": f"client{n % 200}@example.test"}],
        },
        "text": f"Question {n}",
    }


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


# -- Redis dies during a Telegram flood ----------------------------------------------------


async def _telegram_flood(state: BotState, count: int, per_second: float) -> None:
    for i in range(count):
        sender = user(60_000 + i % 100, f"Client{i % 100}", None)
        state.push({"message": message(sender, 1 + i, text=f"Вопрос №{i}")})
        await asyncio.sleep(1 / per_second)


async def test_redis_restart_during_a_flood_pauses_polling_and_loses_nothing(
    pg_url: str,
    private_redis: PrivateRedis,
    bot_api: tuple[FakeBotApi, Callers, list[int]],
    start_worker: Callable[[dict[str, str], int], Worker],
    start_web: Callable[[dict[str, str]], Web],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    fake, callers, ports = bot_api
    bot_id = random.randint(10**8, 10**9)
    token = f"{bot_id}:fault-test-token"
    state = fake.add_bot(token)
    envs = [_env(pg_url, private_redis.url, port, token, tmp_path / "media") for port in ports]
    api_token = _omnihub(tmp_path, envs[0], "create-token", "--name", "faults")
    auth = {"Authorization": f"Bearer {api_token.strip().splitlines()[-1]}"}
    workers = [start_worker(env, port) for env, port in zip(envs, ports, strict=True)]
    # the web process runs no channel loop: it must not poll the bot, with or without Redis
    web = start_web({**envs[0], "OMNIHUB_MIGRATE_ON_START": "false", "OMNIHUB_CHANNELS": "{}"})
    for worker in workers:
        await _wait_healthy(worker.process, worker.health_port, worker.log)
    await _wait_healthy(web.process, web.port, web.log)
    await _eventually(lambda: asyncio.sleep(0, bool(callers.calls)), 30, "a worker polls")

    async def stored() -> int:
        return (await _counts(pg_url, "telegram"))[0]

    async def api_message(n: int) -> int:
        async with http.post(f"{web.base}/api/v1/inbound", json=_api_body(n), headers=auth) as r:
            return r.status

    async def some_stored() -> bool:
        return await stored() >= 150

    flood = asyncio.create_task(_telegram_flood(state, TELEGRAM_FLOOD, per_second=60))
    await _eventually(some_stored, 30, "the owner stores the first updates")
    private_redis.kill()
    killed = time.monotonic()
    at_kill = await stored()
    assert await api_message(1) == 201  # the web process does not need Redis to ingest

    # The owner cannot renew: it stops before its lease could expire (0.8 of the lease
    # time after its last renewal), and nobody can take the lease while Redis is away.
    await asyncio.sleep(LEASE_SECONDS + 0.5)
    quiet_from = time.monotonic()
    paused_at = await stored()
    await asyncio.sleep(1.5)
    assert await api_message(2) == 201
    assert callers.ports_since(quiet_from) == set(), "a worker polled without a lease"
    assert await stored() == paused_at, "updates were stored while Redis was down"
    assert all(w.process.poll() is None for w in workers), "a worker died with Redis"

    private_redis.start()
    restarted = time.monotonic()

    async def resumed() -> bool:
        return bool(callers.ports_since(restarted))

    await _eventually(resumed, LEASE_SECONDS * 4, "a worker polls again after Redis is back")
    first_poll = min(t for times in callers.calls.values() for t in times if t >= restarted)
    await flood

    async def all_stored() -> bool:
        return await stored() >= TELEGRAM_FLOOD

    await _eventually(all_stored, 60, "every update is stored")
    await asyncio.sleep(1.5)  # a repeat, if any, would land now
    total, distinct_ids = await _counts(pg_url, "telegram")
    since = time.monotonic()
    await asyncio.sleep(1.5)
    pollers = callers.ports_since(since)
    assert await api_message(3) == 201
    api_total = await _counts(pg_url, "api")
    print(
        f"\nRedis killed with {at_kill}/{TELEGRAM_FLOOD} stored; paused at {paused_at} "
        f"(none polling from {quiet_from - killed:.1f} s after the kill); "
        f"Redis down {restarted - killed:.1f} s; polling again {first_poll - restarted:.2f} s "
        f"after its restart; stored {total}, distinct {distinct_ids}; api {api_total}"
    )
    assert at_kill <= paused_at < TELEGRAM_FLOOD, "the flood was over: nothing was tested"
    assert (total, distinct_ids) == (TELEGRAM_FLOOD, TELEGRAM_FLOOD)
    assert api_total == (3, 3)
    assert len(pollers) == 1, "exactly one worker polls once Redis is back"
    assert all(w.process.poll() is None for w in workers)
    assert web.process.poll() is None


# -- PostgreSQL restarts during an API flood -----------------------------------------------


@dataclass
class Outcome:
    status: int = 0
    duplicate: bool = False
    message_id: int = 0
    attempts: int = 0
    at: float = 0.0  # when it was answered 200 or 201
    failures: list[str] = field(default_factory=list)


async def _send_with_retries(
    http: aiohttp.ClientSession, url: str, auth: dict[str, str], n: int, outcome: Outcome
) -> None:
    """The same body (same external_id) until it is answered 200 or 201."""
    body = _api_body(n)
    backoff = 0.1
    while True:
        outcome.attempts += 1
        try:
            async with http.post(url, json=body, headers=auth) as response:
                status = response.status
                answer = await response.json() if status in {200, 201} else None
                text = "" if answer is not None else (await response.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.failures.append(type(exc).__name__)
        else:
            if answer is not None:
                outcome.status = status
                outcome.duplicate = bool(answer["duplicate"])
                outcome.message_id = int(answer["message_id"])
                outcome.at = time.monotonic()
                return
            assert status >= 500, f"{n}: {status} {text}"
            outcome.failures.append(str(status))
        assert outcome.attempts < 200, f"{n}: never answered: {outcome.failures[-5:]}"
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 1.0)


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_postgres_restart_during_an_api_flood_recovers_and_stores_each_once(
    mode: str,
    private_postgres: PrivatePostgres,
    private_redis: PrivateRedis,
    start_web: Callable[[dict[str, str]], Web],
    http: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMNIHUB_DATABASE_URL": private_postgres.url,
        "OMNIHUB_REDIS_URL": private_redis.url,
        "OMNIHUB_MIGRATE_ON_START": "false",
        "OMNIHUB_MEDIA_DIR": str(tmp_path / "media"),
        "OMNIHUB_CHANNELS": json.dumps({}),
    }
    _omnihub(tmp_path, env, "migrate")
    api_token = _omnihub(tmp_path, env, "create-token", "--name", "faults")
    auth = {"Authorization": f"Bearer {api_token.strip().splitlines()[-1]}"}
    web = start_web(env)
    await _wait_healthy(web.process, web.port, web.log)
    url = f"{web.base}/api/v1/inbound"

    outcomes = [Outcome() for _ in range(API_FLOOD)]
    pending: asyncio.Queue[int] = asyncio.Queue()
    for n in range(API_FLOOD):
        pending.put_nowait(n)

    async def client() -> None:
        while not pending.empty():
            n = pending.get_nowait()
            await _send_with_retries(http, url, auth, n, outcomes[n])

    clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]

    def answered() -> int:
        return sum(1 for o in outcomes if o.status)

    async def under_way() -> bool:
        return answered() >= API_FLOOD * 0.3

    async def read_contacts() -> int:
        async with http.get(f"{web.base}/api/v1/contacts", headers=auth) as response:
            return response.status

    try:
        await _eventually(under_way, 60, "a third of the flood is answered")
        assert await read_contacts() == 200  # reads run on the asyncpg pool
        at_restart = answered()
        started = time.monotonic()
        # "fast" ends every session (the writer thread's and the pool's) and shuts down
        # cleanly; "immediate" is a crash (no shutdown checkpoint, recovery at the start).
        # Then a few seconds with nothing listening, and the same cluster on the same port.
        await asyncio.to_thread(private_postgres.stop, mode)
        await asyncio.sleep(2.0)
        await asyncio.to_thread(private_postgres.start)
        back = time.monotonic()
        # every pooled asyncpg connection died: the first read after the restart works
        read_after = await read_contacts()
        await asyncio.wait_for(asyncio.gather(*clients), 80)
    finally:
        for task in clients:
            task.cancel()
    done = time.monotonic()

    retried = [o for o in outcomes if o.failures]
    recovered = min((o.at for o in outcomes if o.at > back), default=back) - back
    duplicates = [o for o in outcomes if o.duplicate]
    created = [o for o in outcomes if o.status == 201]
    total, distinct_ids = await _counts(private_postgres.url, "api")
    # Every body again: each is a 200 duplicate of the message it was first stored as.
    again = [Outcome() for _ in range(API_FLOOD)]
    sem = asyncio.Semaphore(CLIENTS)

    async def resend(n: int) -> None:
        async with sem:
            await _send_with_retries(http, url, auth, n, again[n])

    await asyncio.gather(*(resend(n) for n in range(API_FLOOD)))
    print(
        f"\nPostgreSQL stopped ({mode}) with {at_restart}/{API_FLOOD} answered, down "
        f"{back - started:.1f} s; the hub answered again {recovered:.2f} s after it was back "
        f"(no restart), all answered {done - back:.1f} s after; "
        f"{len(created)} created, {len(duplicates)} duplicates (all after a failed attempt), "
        f"{len(retried)} retried ({sum(len(o.failures) for o in retried)} failed attempts: "
        f"{sorted({f for o in retried for f in o.failures})}); stored {total}, "
        f"distinct {distinct_ids}"
    )
    assert at_restart < API_FLOOD, "the flood was over before the restart: nothing was tested"
    assert web.process.poll() is None, "the web process died"
    assert read_after == 200, "the first read after the restart failed"
    assert retried, "no request failed: the restart did not hit the flood"
    assert all(o.status in {200, 201} for o in outcomes)
    # a duplicate answer only for a retry whose earlier attempt had committed
    assert all(o.failures for o in duplicates)
    assert len(created) + len(duplicates) == API_FLOOD
    assert (total, distinct_ids) == (API_FLOOD, API_FLOOD)
    assert len({o.message_id for o in outcomes}) == API_FLOOD
    assert all(a.status == 200 and a.duplicate and not a.failures for a in again)
    assert [a.message_id for a in again] == [o.message_id for o in outcomes]
