"""Alembic migrations on SQLite and PostgreSQL: up, in step with the models, down, up."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text

from crm_core import migrate
from crm_core.db import Database
from crm_core.models import Base


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


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
