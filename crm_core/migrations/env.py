"""Alembic environment: runs the migrations over the async engine it is given."""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from crm_core.models import Base
from crm_core.search_words import in_models

target_metadata = Base.metadata
MIGRATION_LOCK_KEY = 0x6F6D6E6968756201  # pg_advisory_lock key: "omnihub" + 1, fixed forever


def _run(connection: Any) -> None:
    """On PostgreSQL, one migrator at a time: hubs starting together wait for the first,
    then find the schema current (a session-level advisory lock on Alembic's connection)."""
    if connection.dialect.name != "postgresql":
        _migrate(connection)
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()  # the lock outlives the transaction; Alembic opens its own
    try:
        _migrate(connection)
    finally:
        connection.rollback()  # a failed migration leaves its transaction aborted
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


def _migrate(connection: Any) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=in_models,  # autogenerate leaves the search index (0014) alone
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online_async(url: str) -> None:
    engine = create_async_engine(url)
    async with engine.connect() as async_connection:
        await async_connection.run_sync(_run)
    await engine.dispose()


def _online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or ""
    if make_url(url).get_dialect().is_async:
        asyncio.run(_online_async(url))
        return
    engine = create_engine(url)
    with engine.connect() as sync_connection:
        _run(sync_connection)
        sync_connection.commit()
    engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    _online()
