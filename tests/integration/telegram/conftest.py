"""A local Bot API server per test, and the connector's pieces wired to a real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiogram import Bot

from connectors.store import FileStore
from connectors.telegram.client import make_bot
from connectors.telegram.config import BotConfig, StartLink
from connectors.telegram.media import MediaFetcher
from connectors.telegram.updates import UpdateHandler
from crm_core.clock import ManualClock
from crm_core.contracts import Attribution
from crm_core.db import Database
from crm_core.ingest import IngestPolicy, IngestService
from tests.factories import add_managers
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi

TOKEN = "123456789:TEST-token-for-the-local-bot-api"
SECRET = "webhook-secret-0123456789"


@pytest.fixture
async def fake_api() -> AsyncIterator[FakeBotApi]:
    server = FakeBotApi()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def tg(fake_api: FakeBotApi) -> BotState:
    return fake_api.add_bot(TOKEN)


@pytest.fixture
def bot_config(fake_api: FakeBotApi) -> BotConfig:
    return BotConfig(
        key="salesbot",
        token=TOKEN,
        api_base=fake_api.base_url,
        polling_timeout=0,
        start_payloads={
            "webinar_oct": StartLink(
                Attribution(utm_source="telegram", utm_campaign="webinar_oct"), "webinar"
            )
        },
    )


@pytest.fixture
async def bot(bot_config: BotConfig) -> AsyncIterator[Bot]:
    client = make_bot(bot_config)
    yield client
    await client.session.close()


@pytest.fixture
async def ingest(db: Database, clock: ManualClock) -> IngestService:
    await add_managers(db, 2)
    return IngestService(db, clock, IngestPolicy())


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "media")


@pytest.fixture
def handler(
    bot_config: BotConfig, bot: Bot, ingest: IngestService, store: FileStore
) -> UpdateHandler:
    return UpdateHandler(bot_config, bot, ingest, MediaFetcher(store, max_bytes=1024 * 1024))
