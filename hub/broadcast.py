"""Live events across processes: PostgreSQL ``LISTEN``/``NOTIFY`` in front of the bus.

In embedded mode (SQLite, one process) the outbox relay hands each ``events`` row
straight to the process's :class:`~crm_core.events.EventBus`. On PostgreSQL several web
processes (and workers) share the outbox, and the relay that claims a row may run in
any of them, so the relay's handler is :class:`LiveBroadcast` instead: it announces the
row with ``NOTIFY`` on one channel, and every process (the relay's own included) listens
on that channel and feeds its own bus, whose subscribers (the inbox's sockets) filter
by viewer as before. The relay's own process is served by its listener like any other,
never straight from the handler: each row reaches each local socket once.

Why PostgreSQL and not Redis pub/sub: the database is the one service every scaled
deployment has (Redis is optional), the events come out of it anyway, and a listener
that reconnects gets the same semantics from either. ``NOTIFY`` payloads are limited to
8000 bytes: a notification carries the row's id and, for each event, its name and
integer fields only (the ids the sockets route and announce by, never text); a row
whose summary would not fit is announced by id alone and read back by the listeners.

Order: one publisher per process sends in the order the relay hands rows over (the
relay takes rows in id order), PostgreSQL delivers notifications in commit order, and
each listener passes them on in the order received. A row is announced once; a retry
of the same row (a publish whose answer was lost) is dropped by the listeners, which
remember the last few thousand row ids. When a listener loses its connection the
events sent meanwhile are lost to it: it tells its sockets to close (:data:`RESYNC`),
and the pages reconnect and fetch what they show again, as after any reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from crm_core.enums import OutboxStatus
from crm_core.events import EventBus
from crm_core.journal import EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX, unpacked
from crm_core.outbox import OutboxHandler, OutboxItem
from hub.background import cancel_all
from hub.signals import SIGNAL_CHANNEL

log = logging.getLogger(__name__)

CHANNEL = "omnihub_live"
MAX_PAYLOAD = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
_REMEMBERED = 4096  # row ids a listener keeps to drop a repeated announcement
_RECONNECT_DELAY = 1.0
_PROBE_EVERY = 30.0  # seconds without a notification before the listener checks its line


# Events rows before a given one that a relay holds (claimed, not yet recorded).
_HELD_EARLIER = """
SELECT id FROM outbox
WHERE status = $2 AND locked_until IS NOT NULL AND id < $1 AND (topic = $3 OR topic LIKE $4)
"""
_HELD_ARGUMENTS = (OutboxStatus.PENDING.value, EVENTS_TOPIC, LEGACY_EVENT_TOPIC_PREFIX + "%")
_WAIT_FOR_EARLIER = 1.0


def _remember(ids: OrderedDict[int, None], row: int) -> None:
    ids[row] = None
    if len(ids) > _REMEMBERED:
        ids.popitem(last=False)


class PublishError(Exception):
    """The announcement of an events row could not be sent; the relay retries the row."""


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as a plain DSN for ``asyncpg.connect``."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def announcement(item: OutboxItem) -> str:
    """The ``NOTIFY`` payload of an events row: its id, and each event's name and ints."""
    events = []
    for _key, payload in unpacked(item.payload, item.idempotency_key):
        events.append(
            {
                k: v
                for k, v in payload.items()
                if k == "event" or (isinstance(v, int) and -(2**63) <= v < 2**63)
            }
        )
    text = json.dumps({"o": item.id, "e": events}, separators=(",", ":"))
    if len(text.encode()) <= MAX_PAYLOAD:
        return text
    return json.dumps({"o": item.id})


class LiveBroadcast:
    """The announcer of ``events`` rows on PostgreSQL (:meth:`announcing` wraps the relay's
    handler of them), and this process's listener."""

    def __init__(self, database_url: str, bus: EventBus, channel: str = CHANNEL) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._bus = bus
        self._channel = channel
        self._outgoing: asyncio.Queue[tuple[int, str, asyncio.Future[None]]] = asyncio.Queue()
        self._incoming: asyncio.Queue[str | None] = asyncio.Queue()
        self._seen: OrderedDict[int, None] = OrderedDict()  # heard by the listener
        self._announced: OrderedDict[int, None] = OrderedDict()  # sent (or given up on) here
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()

    async def start(self) -> None:
        """Listen (before the relay starts, so that nothing it announces is missed)."""
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="live-listener"),
            asyncio.create_task(self._publish_forever(), name="live-publisher"),
        ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), 10)

    async def close(self) -> None:
        await cancel_all(self._tasks)
        self._tasks = []

    def announcing(self, inner: OutboxHandler) -> OutboxHandler:
        """The relay's handler of events rows: announce the row, and run ``inner`` (the
        webhooks' fan-out); done when both are.

        The announcement is queued before the first await: the relay's lanes start their
        rows in id order, so the rows are announced in that order whatever ``inner``
        waits for. Should ``inner`` fail, the row is retried and announced again: the
        listeners drop the repeat by its id."""

        async def handle(item: OutboxItem) -> None:
            sent = self._announce(item)
            try:
                await inner(item)
            finally:
                await sent

        return handle

    def _announce(self, item: OutboxItem) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._outgoing.put_nowait((item.id, announcement(item), done))
        return done

    # The publishing half: one connection, one task, in order.

    async def _publish_forever(self) -> None:
        connection: asyncpg.Connection | None = None
        try:
            while True:
                batch = [await self._outgoing.get()]
                while not self._outgoing.empty() and len(batch) < 500:
                    batch.append(self._outgoing.get_nowait())
                try:
                    if connection is None or connection.is_closed():
                        connection = await asyncpg.connect(self._dsn, timeout=10)
                    await self._after_earlier_rows(connection, min(row for row, _, _ in batch))
                    # One round trip, one transaction: notifications of one transaction
                    # are delivered together and in the order they were sent.
                    await connection.execute(
                        "SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p",
                        self._channel,
                        [text for _, text, _ in batch],
                    )
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("live events: NOTIFY failed (%s); the relay retries", exc)
                    error = PublishError(str(exc))
                    for _, _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    if connection is not None:
                        with contextlib.suppress(Exception):
                            connection.terminate()
                    connection = None
                    continue
                for row, _, done in batch:
                    _remember(self._announced, row)
                    if not done.done():
                        done.set_result(None)
        finally:
            if connection is not None:
                connection.terminate()

    async def _after_earlier_rows(self, connection: asyncpg.Connection, first: int) -> None:
        """Wait (a little) until the events rows before ``first`` that another relay holds
        are announced: two relays may claim consecutive rows of one conversation, and
        the later one must not be announced first. Bounded: a relay that died holding
        rows (its lease runs out) delays the announcements by :data:`_WAIT_FOR_EARLIER`
        once."""
        deadline = asyncio.get_running_loop().time() + _WAIT_FOR_EARLIER
        while True:
            held = await connection.fetch(_HELD_EARLIER, first, *_HELD_ARGUMENTS)
            waiting = [
                r["id"]
                for r in held
                if r["id"] not in self._seen and r["id"] not in self._announced
            ]
            if not waiting:
                return
            log.debug("live events: row %s waits for rows %s of another relay", first, waiting)
            if asyncio.get_running_loop().time() > deadline:
                log.warning("live events: rows %s not announced in time; going on", waiting[:10])
                for row in waiting:
                    _remember(self._announced, row)
                return
            await asyncio.sleep(0.005)

    # The listening half: one connection; notifications are passed on in order.

    async def _listen_forever(self) -> None:
        lost_before = False
        while True:
            try:
                await self._listen_once(lost_before)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("live events: listener connection lost (%s); reconnecting", exc)
            lost_before = True
            await asyncio.sleep(_RECONNECT_DELAY)

    async def _listen_once(self, lost_before: bool) -> None:
        connection = await asyncpg.connect(self._dsn, timeout=10)
        try:
            closed = asyncio.Event()
            connection.add_termination_listener(lambda _connection: closed.set())
            await connection.add_listener(self._channel, self._notified)
            await connection.add_listener(SIGNAL_CHANNEL, self._signalled)
            self._listening.set()
            if lost_before:
                log.warning("live events: listening again; the sockets re-fetch")
                self._bus.reset()  # what was sent while deaf is lost: pages reload
            await self._dispatch(connection, closed)
        finally:
            connection.terminate()

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self._incoming.put_nowait(payload)

    def _signalled(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        """A signal (hub/signals.py): not stored, not ordered, passed straight on."""
        try:
            signal = json.loads(payload)
        except ValueError:
            return
        if isinstance(signal, dict) and isinstance(signal.get("event"), str):
            self._bus.deliver([signal])

    async def _dispatch(self, connection: asyncpg.Connection, closed: asyncio.Event) -> None:
        closing = asyncio.create_task(closed.wait())
        try:
            while True:
                getter = asyncio.create_task(self._incoming.get())
                await asyncio.wait(
                    {getter, closing}, timeout=_PROBE_EVERY, return_when=asyncio.FIRST_COMPLETED
                )
                if not getter.done():
                    getter.cancel()
                    if closing.done():
                        raise asyncpg.InterfaceError("the listening connection closed")
                    await connection.execute("SELECT 1", timeout=10)  # still there?
                    continue
                text = getter.result()
                if text is not None:
                    await self._pass_on(connection, text)
        finally:
            closing.cancel()

    async def _pass_on(self, connection: asyncpg.Connection, text: str) -> None:
        try:
            note = json.loads(text)
            row_id = int(note["o"])
        except (ValueError, KeyError, TypeError):
            log.warning("live events: an announcement that is not ours: %.200r", text)
            return
        if row_id in self._seen:
            return
        _remember(self._seen, row_id)
        events = note.get("e")
        if not isinstance(events, list):
            events = await self._read_row(connection, row_id)
        self._bus.deliver([e for e in events if isinstance(e, Mapping)])

    async def _read_row(
        self, connection: asyncpg.Connection, row_id: int
    ) -> list[Mapping[str, Any]]:
        """An announcement too big for ``NOTIFY``: the row's events, read back."""
        row = await connection.fetchrow(
            "SELECT payload, idempotency_key FROM outbox WHERE id = $1", row_id
        )
        if row is None:
            return []
        payload = row["payload"]
        if isinstance(payload, str):
            payload = json.loads(payload)
        return [p for _k, p in unpacked(payload, row["idempotency_key"])]
