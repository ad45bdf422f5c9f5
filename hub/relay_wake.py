"""Waking the outbox relays of the other processes (scaled mode, PostgreSQL).

A commit that writes outbox rows wakes its own process's relay at once
(:meth:`OutboxRelay.wake`). In scaled mode the relays run in the workers, not in the
web process that took the request: without a word from it they found the rows at their
next poll (``outbox_poll_seconds``), and a reply or a live update waited up to that long
(measured with bench.scale: p50 530 ms, p99 1,060 ms from a commit on one web process to
a socket on another). So each process also sends ``NOTIFY omnihub_wake`` after such a
commit (one per burst: the wake-ups that come while one is being sent are folded into
it), and every process listens and wakes its own relay. A wake-up lost with a connection
costs only the wait for the next poll, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from hub.background import cancel_all
from hub.broadcast import asyncpg_dsn

log = logging.getLogger(__name__)
CHANNEL = "omnihub_wake"
_RECONNECT_DELAY = 1.0
_CONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class RelayWake:
    def __init__(self, database_url: str, wake_here: Callable[[], None]) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._wake_here = wake_here
        self._pending = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def tell_others(self) -> None:
        """After a commit that wrote outbox rows (cheap: the NOTIFY goes from a task)."""
        self._pending.set()

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._send_forever(), name="relay-wake-sender"),
            asyncio.create_task(self._listen_forever(), name="relay-wake-listener"),
        ]

    async def close(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    async def _send_forever(self) -> None:
        connection: asyncpg.Connection | None = None
        try:
            while True:
                await self._pending.wait()
                self._pending.clear()
                try:
                    if connection is None or connection.is_closed():
                        connection = await asyncpg.connect(self._dsn, timeout=10)
                    await connection.execute(f"NOTIFY {CHANNEL}", timeout=10)
                except _CONNECT_ERRORS as exc:
                    log.warning("relay wake-up not sent (%s); the relays will poll", exc)
                    connection = None
                    await asyncio.sleep(_RECONNECT_DELAY)
        finally:
            if connection is not None:
                connection.terminate()

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen_once()
            except _CONNECT_ERRORS as exc:
                log.warning("relay wake-up listener lost (%s); reconnecting", exc)
            await asyncio.sleep(_RECONNECT_DELAY)

    async def _listen_once(self) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            closed = asyncio.Event()
            connection.add_termination_listener(lambda _connection: closed.set())
            await connection.add_listener(CHANNEL, self._heard)
            await closed.wait()
        finally:
            connection.terminate()

    def _heard(self, _connection: Any, _pid: int, _channel: str, _payload: str) -> None:
        self._wake_here()
