"""Alembic migrations on SQLite and PostgreSQL: up, in step with the models, down, up."""

from __future__ import annotations

import asyncio
import multiprocessing
import uuid
from multiprocessing.synchronize import Barrier
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from crm_core import migrate
from crm_core.db import Database
from tests.conftest import PG_ADMIN_DSN, _pg_execute, _sqlalchemy_url

STARTERS = 4
_start: Barrier | None = None  # set in each starter process


def _diff(connection: Connection) -> list[Any]:
    return migrate.schema_diff(connection)


async def test_schema_matches_models_and_downgrades(database_url: str) -> None:
    # The fixture's database is already at head (migrated from the template).
    db = Database(database_url)
    try:
        assert await db.read(lambda s: _diff(s.connection())) == []
        stages = await db.read(lambda s: s.execute(text("SELECT count(*) FROM stages")).scalar())
        assert stages == 6 * 8
    finally:
        await db.dispose()
    await asyncio.to_thread(migrate.downgrade, database_url, "base")
    db = Database(database_url)
    try:
        tables = await db.read(lambda s: _diff(s.connection()))
        assert any(change[0] == "add_table" for change in tables)
    finally:
        await db.dispose()
    await asyncio.to_thread(migrate.upgrade, database_url)
    db = Database(database_url)
    try:
        assert await db.read(lambda s: _diff(s.connection())) == []
    finally:
        await db.dispose()


def _starter(start: Barrier) -> None:
    global _start
    _start = start


def _upgrade_together(database_url: str) -> None:
    """One hub's start: wait for the others, then migrate at the same moment."""
    assert _start is not None
    _start.wait(timeout=30)
    migrate.upgrade(database_url)


@pytest.mark.postgres
@pytest.mark.timeout(120)
async def test_hubs_starting_together_migrate_a_new_database_once(pg_template: str) -> None:
    # Separate processes, as separate hubs are (Alembic's context is process-global).
    spawn = multiprocessing.get_context("spawn")
    head = ScriptDirectory.from_config(migrate.alembic_config("sqlite://")).get_current_head()
    with spawn.Pool(STARTERS, _starter, (spawn.Barrier(STARTERS),)) as starters:
        for _ in range(3):
            name = f"omnihub_m_{uuid.uuid4().hex[:10]}"
            await _pg_execute(f'CREATE DATABASE "{name}"')
            url = _sqlalchemy_url(PG_ADMIN_DSN, name)
            try:
                runs = starters.map_async(_upgrade_together, [url] * STARTERS, chunksize=1)
                await asyncio.to_thread(runs.get, 90)  # each raises here if it failed
                db = Database(url)
                try:
                    versions = await db.read(
                        lambda s: list(s.execute(text("SELECT version_num FROM alembic_version")))
                    )
                    assert [row[0] for row in versions] == [head]
                    assert await db.read(lambda s: _diff(s.connection())) == []
                finally:
                    await db.dispose()
            finally:
                await _pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
