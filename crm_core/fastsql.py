"""Statements compiled once per dialect and run straight on the DB-API cursor.

The ingest path runs a dozen small statements per message. SQLAlchemy's general
execution machinery (cache keys, execution contexts, result objects) costs several
times what SQLite itself spends on such a statement, so the hot statements are
compiled once per dialect with SQLAlchemy and then executed on the connection's
DB-API cursor, with the bind processors of their column types (datetimes, JSON,
booleans) applied exactly as SQLAlchemy would. Errors are raised as SQLAlchemy's
``DBAPIError`` subclasses (``IntegrityError`` ...), like any other statement.

Only statements with plain scalar parameters belong here (no expanding ``IN``); rows
come back as tuples, converted by their columns' result processors where the type has
one (datetimes on SQLite).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, DateTime, Table, bindparam, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeEngine

from crm_core.models.base import UTCDateTime

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    defaults: tuple[Any, ...]
    processors: tuple[Processor, ...]
    results: tuple[Processor, ...] | None
    converted: tuple[tuple[int, Callable[[Any], Any]], ...] = field(init=False)

    def __post_init__(self) -> None:
        converted = tuple((i, p) for i, p in enumerate(self.processors) if p is not None)
        object.__setattr__(self, "converted", converted)

    def bind(self, params: Mapping[str, Any]) -> tuple[Any, ...]:
        """The statement's positional parameters, through their types' bind processors."""
        try:
            values = [params[name] for name in self.names]
        except KeyError:
            values = [params.get(n, d) for n, d in zip(self.names, self.defaults, strict=True)]
            for name, value in zip(self.names, values, strict=True):
                if value is _UNSET:
                    raise KeyError(f"no value for the parameter {name!r}") from None
        for index, process in self.converted:
            value = values[index]
            if value is not None:
                values[index] = process(value)
        return tuple(values)

    def row(self, values: Sequence[Any]) -> tuple[Any, ...]:
        if self.results is None:
            return tuple(values)
        return tuple(
            p(v) if p is not None and v is not None else v
            for p, v in zip(self.results, values, strict=True)
        )


_UNSET = object()
_RAW_KEY = "omnihub.fastsql.raw"


def _processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _memo_instants(_sqlite_utc)
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is not None and isinstance(type_, DateTime | UTCDateTime):
        return _memo_last(process)
    return process


def _sqlite_utc(value: datetime) -> str:
    """What ``UTCDateTime`` stores on SQLite (SQLAlchemy's text format), made in C."""
    zone = value.tzinfo
    if zone is None:
        raise ValueError("naive datetimes are not stored: give a timezone")
    if zone is not UTC:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class Prepared:
    """One statement, compiled lazily for each dialect it meets."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    @classmethod
    def insert(
        cls, table: Table, columns: Iterable[str], *, returning_id: bool = False
    ) -> Prepared:
        values = {name: bindparam(name, type_=table.c[name].type) for name in columns}
        statement = insert(table).values(values)
        return cls(statement.returning(table.c.id) if returning_id else statement)

    def _for(self, dialect: Dialect) -> _Compiled:
        # By driver too: asyncpg's statements are numbered ($1), psycopg's positional (%s).
        key = f"{dialect.name}+{dialect.driver}"
        compiled = self._compiled.get(key)
        if compiled is None:
            done = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            names = tuple(done.positiontup or ())
            binds = [done.binds[name] for name in names]
            compiled = _Compiled(
                sql=done.string,
                names=names,
                defaults=tuple(_UNSET if b.required else b.effective_value for b in binds),
                processors=tuple(_processor(b.type, dialect) for b in binds),
                results=self._result_processors(dialect),
            )
            self._compiled[key] = compiled
        return compiled

    def _result_processors(self, dialect: Dialect) -> tuple[Processor, ...] | None:
        columns = getattr(self.statement, "selected_columns", None)
        if columns is None:
            return None
        processors = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )
        return processors if any(p is not None for p in processors) else None

    def execute(self, raw: Raw, params: Mapping[str, Any] | None = None) -> None:
        compiled = self._for(raw.dialect)
        row = compiled.bind(params or {})
        try:
            raw.cursor.execute(compiled.sql, row)
        except raw.error as exc:
            raise raw.wrapped(compiled.sql, row, exc) from exc

    def executemany(self, raw: Raw, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        compiled = self._for(raw.dialect)
        values = [compiled.bind(params) for params in rows]
        try:
            raw.cursor.executemany(compiled.sql, values)
        except raw.error as exc:
            raise raw.wrapped(compiled.sql, values, exc) from exc

    def first(self, raw: Raw, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        self.execute(raw, params)
        row = raw.cursor.fetchone()
        return self._for(raw.dialect).row(row) if row is not None else None

    def all(self, raw: Raw, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        self.execute(raw, params)
        compiled = self._for(raw.dialect)
        return [compiled.row(row) for row in raw.cursor.fetchall()]

    def scalar(self, raw: Raw, params: Mapping[str, Any] | None = None) -> Any:
        row = self.first(raw, params)
        return row[0] if row is not None else None


class Raw:
    """The DB-API side of a transaction's connection, with one cursor for its statements."""

    @classmethod
    def of(cls, session: Session) -> Raw:
        """The session's ``Raw``, made once for its connection (a group commit runs
        many pieces of work in one session)."""
        connection = session.connection()
        raw = session.info.get(_RAW_KEY)
        if not isinstance(raw, Raw) or raw.connection is not connection:
            raw = session.info[_RAW_KEY] = cls(connection)
        return raw

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.dialect = connection.dialect
        self.error: type[Exception] = self.dialect.loaded_dbapi.Error
        self.cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]

    def wrapped(self, sql: str, params: Any, error: Exception) -> StatementError:
        """The error as SQLAlchemy raises it (``IntegrityError`` for a unique key...)."""
        return DBAPIError.instance(sql, params, error, self.error, dialect=self.dialect)


def _memo_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Remember the last value converted: a transaction binds the same ``now`` many times."""
    cell: list[tuple[Any, Any]] = [(_UNSET, None)]

    def convert(value: Any) -> Any:
        last, result = cell[0]
        if value is last:
            return result
        result = process(value)
        cell[0] = (value, result)
        return result

    return convert


def _memo_instants(process: Callable[[datetime], str], size: int = 64) -> Callable[[Any], Any]:
    """Remember recent conversions by instant: a transaction binds its ``now``, the
    message's time and a due time again and again, in turns (the UTC text depends
    only on the instant, so equal datetimes share it)."""
    recent: dict[datetime, str] = {}

    def convert(value: datetime) -> str:
        found = recent.get(value)
        if found is None:
            if len(recent) >= size:
                recent.clear()
            found = recent[value] = process(value)
        return found

    return convert
