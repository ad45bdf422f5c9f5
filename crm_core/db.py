"""The database handle: each transaction is one piece of synchronous ORM work.

Services write their transactions as plain functions of a :class:`Session`;
:meth:`Database.write` and :meth:`Database.read` run them, so both modes share
one code path:

* **SQLite (embedded)**: writes run on one writer thread (SQLite has one writer
  at a time) with the standard ``sqlite3`` driver, reads on a small pool of reader
  threads. The writer commits in groups: the pieces of work waiting when it is free
  run in one transaction, and each caller is answered only after that commit. If
  one piece raises, the group is rolled back and each piece is run again alone, so
  a failure never takes another's work with it (work must therefore be a function
  of the session and its inputs only, safe to run twice).
* **PostgreSQL (scaled)**: the work runs through ``AsyncSession.run_sync`` on
  asyncpg, on the event loop, a transaction each, except the ingest path
  (:meth:`Database.write_grouped`): it runs like SQLite's writes, on one writer thread
  that commits in groups, through psycopg (a synchronous driver: the thread waits on
  the network with the GIL released). A transaction per message on the event loop held
  its routing locks (:mod:`crm_core.load_locks`) across a dozen round trips that each
  waited for the loop, while dozens of others queued on the same managers' rows:
  PostgreSQL ingested at a fifth of SQLite's rate. Group commit serialises those
  decisions inside the process instead, and takes the locks once per group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")
Work = Callable[[Session], T]

_SQLITE_PRAGMAS = (
    "cache_size=-65536",
    "journal_mode=WAL",
    "synchronous=NORMAL",
    "foreign_keys=ON",
    "busy_timeout=10000",
)


def json_text(value: Any) -> str:
    """How JSON columns are stored: UTF-8 text, made by orjson (several times faster
    than the standard library on the ingest path's audit and outbox payloads).

    What orjson refuses (an integer past 64 bits in a form's custom fields) goes through
    the standard library, so that nothing a client sends fails to store. Reading stays
    with the standard library, which keeps such integers exact.
    """
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False)


def sync_url(url: str) -> str:
    """The URL with a synchronous driver (``sqlite3``, ``psycopg``-free PostgreSQL is async)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    return url


def async_url(url: str) -> str:
    """The URL with an asyncio driver: asyncpg for PostgreSQL, aiosqlite for SQLite."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}.get(backend)
    if driver is None:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def psycopg_url(url: str) -> str:
    """The PostgreSQL URL with the psycopg driver (the writer thread's)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int, echo: bool) -> Engine:
    engine = create_engine(
        sync_url(url),
        echo=echo,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False},
        json_serializer=json_text,
    )

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cursor = dbapi_connection.cursor()
        for pragma in _SQLITE_PRAGMAS:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: another process (the CLI beside a
        # running hub) waits on busy_timeout instead of failing half-way.
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class GroupCommitWriter:
    """One thread that runs write work for SQLite, committing waiting pieces together."""

    def __init__(self, sessions: sessionmaker[Session], max_group: int = 64) -> None:
        self._sessions = sessions
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="omnihub-db-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Work[T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Pending(work, future, loop))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self._max_group:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this group, then stop
                    break
                group.append(more)
            self._commit_group(group)

    def _commit_group(self, group: list[_Pending[Any]]) -> None:
        outcomes: list[tuple[_Pending[Any], Any, BaseException | None]] = []
        if len(group) > 1:
            try:
                with self._sessions() as session, session.begin():
                    results = [pending.work(session) for pending in group]
            except Exception:
                log.debug("a group of %d writes failed; running each alone", len(group))
            else:
                outcomes = [(p, r, None) for p, r in zip(group, results, strict=True)]
        if not outcomes:
            for pending in group:
                try:
                    with self._sessions() as session, session.begin():
                        outcomes.append((pending, pending.work(session), None))
                except Exception as exc:
                    outcomes.append((pending, None, exc))
        # One wake-up of each waiting event loop for the whole group.
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for pending, result, error in outcomes:
            by_loop.setdefault(pending.loop, []).append((pending.future, result, error))
        for loop, settled in by_loop.items():
            loop.call_soon_threadsafe(_settle_all, settled)


@dataclass(slots=True)
class _Pending(Generic[T]):
    work: Work[T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


def _settle_all(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, result, error in settled:
        _settle(future, result, error)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Database:
    """One per process, built by ``hub`` from settings (never at import time)."""

    def __init__(self, url: str, *, echo: bool = False, readers: int = 4) -> None:
        self.url = url
        self.is_sqlite = make_url(url).get_backend_name() == "sqlite"
        self._async_engine: AsyncEngine | None = None
        if self.is_sqlite:
            self._write_engine = _sqlite_engine(url, immediate=True, pool_size=1, echo=echo)
            self._read_engine = _sqlite_engine(url, immediate=False, pool_size=readers, echo=echo)
            self._writes = sessionmaker(self._write_engine, expire_on_commit=False)
            self._reads = sessionmaker(self._read_engine, expire_on_commit=False)
            self._writer = GroupCommitWriter(self._writes)
            self._readers = ThreadPoolExecutor(readers, thread_name_prefix="omnihub-db-reader")
        else:
            self._async_engine = create_async_engine(
                async_url(url),
                echo=echo,
                pool_size=10,
                max_overflow=10,
                pool_pre_ping=True,
                json_serializer=json_text,
            )
            # The writer thread's one connection. No ping per transaction (a round
            # trip each): a connection that broke fails its group, SQLAlchemy
            # invalidates it, and the pieces run again alone on a new one.
            self._write_engine = create_engine(
                psycopg_url(url),
                echo=echo,
                pool_size=1,
                max_overflow=0,
                json_serializer=json_text,
                paramstyle="format",  # positional: crm_core.fastsql binds by position
            )
            self._writer = GroupCommitWriter(
                sessionmaker(self._write_engine, expire_on_commit=False)
            )

    @property
    def dialect(self) -> str:
        return "sqlite" if self.is_sqlite else "postgresql"

    async def write(self, work: Work[T]) -> T:
        """Run ``work`` in a transaction that commits if it returns and rolls back if it raises."""
        if self._async_engine is not None:
            return await self._write_async(work)
        return await self._writer.submit(work)

    async def write_grouped(self, work: Work[T]) -> T:
        """Like :meth:`write`, for the hot path (ingest): on PostgreSQL too, the work
        shares a transaction with the others waiting, on the writer thread.

        Other writes on PostgreSQL keep a transaction of their own on the event loop: a
        relay's lease renewal must not wait behind a queue of messages."""
        return await self._writer.submit(work)

    async def read(self, work: Work[T]) -> T:
        """Run ``work`` in a read-only transaction (rolled back at the end)."""
        if self._async_engine is not None:
            return await self._read_async(work)
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, self._run_sync, self._reads, work, False
        )

    @staticmethod
    def _run_sync(sessions: sessionmaker[Session], work: Work[T], commit: bool = True) -> T:
        with sessions() as session:
            if not commit:
                return work(session)
            with session.begin():
                return work(session)

    async def _read_async(self, work: Work[T]) -> T:
        assert self._async_engine is not None
        async with AsyncSession(self._async_engine, expire_on_commit=False) as session:
            return await session.run_sync(work)

    async def _write_async(self, work: Work[T]) -> T:
        assert self._async_engine is not None
        async with (
            AsyncSession(self._async_engine, expire_on_commit=False) as session,
            session.begin(),
        ):
            return await session.run_sync(work)

    async def dispose(self) -> None:
        self._writer.close()
        self._write_engine.dispose()
        if self._async_engine is not None:
            await self._async_engine.dispose()
            return
        self._readers.shutdown(wait=True)
        self._read_engine.dispose()
