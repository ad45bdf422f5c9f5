"""Schema migrations (Alembic), run programmatically by ``omnihub migrate`` and at start."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config

from crm_core.db import async_url, sync_url

if TYPE_CHECKING:
    from sqlalchemy import Connection

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    # SQLite migrates through the standard driver; PostgreSQL through asyncpg.
    url = sync_url(database_url) if database_url.startswith("sqlite") else async_url(database_url)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Bring the schema to ``revision``; runs its own event loop (call it outside one)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def schema_diff(connection: Connection) -> list[Any]:
    """What differs between the database's schema and the models (Alembic's comparison,
    types included), the search index's own objects left out."""
    from alembic.autogenerate import compare_metadata  # the tests' tool: not at every start
    from alembic.migration import MigrationContext

    from crm_core.models import Base
    from crm_core.search_words import in_models

    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_name": in_models}
    )
    return list(compare_metadata(context, Base.metadata))
