"""Shared fixtures: migrated SQLite and PostgreSQL databases, a manual clock."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from crm_core import migrate
from crm_core.clock import ManualClock
from crm_core.db import Database

PG_ADMIN_DSN = os.environ.get("OMNIHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _sqlalchemy_url(dsn: str, database: str) -> str:
    base = dsn.rsplit("/", 1)[0]
    return f"{base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{database}"


async def _pg_execute(sql: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "hub.sqlite3"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database; each test gets a fresh copy of it."""
    name = f"omnihub_tpl_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_execute(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        if IN_CI:
            pytest.fail(f"PostgreSQL is needed in CI and is not reachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_DSN} ({exc}); install and start it")
    try:
        migrate.upgrade(_sqlalchemy_url(PG_ADMIN_DSN, name))
        yield name
    finally:
        asyncio.run(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_url(pg_template: str) -> AsyncIterator[str]:
    name = f"omnihub_t_{uuid.uuid4().hex[:10]}"
    await _pg_execute(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    try:
        yield _sqlalchemy_url(PG_ADMIN_DSN, name)
    finally:
        await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test against the embedded store and the server store."""
    fixture = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()
