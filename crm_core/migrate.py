"""Schema migrations (Alembic), run programmatically by ``omnihub migrate`` and at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from crm_core.db import async_url, sync_url

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
