"""The webhook receiver on its own: an update that cannot be committed is not acknowledged."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from connectors.store import FileStore
from connectors.telegram.client import make_bot
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.updates import UpdateHandler
from connectors.telegram.webhook import SECRET_HEADER, WebhookReceiver
from crm_core.contracts import Checkpoint, Edit, IdentityRef, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.ingest import IngestService
from crm_core.models import Message
from tests.integration.raw_http import LATIN1_BYTES, raw_request
from tests.integration.telegram.conftest import SECRET, TOKEN
from tests.integration.telegram.fake_bot_api import BotState, message, user

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


class DownCore:
    """A core whose database is unreachable."""

    def __init__(self) -> None:
        self.calls = 0

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        self.calls += 1
        raise ConnectionError("database unreachable")

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        return None

    async def edit(self, edit: Edit) -> bool:
        raise ConnectionError("database unreachable")

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        return False


async def test_an_update_that_was_not_committed_gets_no_2xx(
    aiohttp_client: ClientFactory, store: FileStore
) -> None:
    config = BotConfig("salesbot", TOKEN, mode="webhook", secret_token=SECRET)
    core = DownCore()
    bot = make_bot(config)
    try:
        handler = UpdateHandler(config, bot, core, MediaFetcher(store, 1024))
        app = web.Application()
        receiver = WebhookReceiver({"salesbot": handler})
        app.router.add_post("/hooks/telegram/{bot_key}", receiver.receive)
        client = await aiohttp_client(app)
        update = {"update_id": 5, "message": message(user(1), 1, text="привет")}
        answer = await client.post(
            "/hooks/telegram/salesbot",
            json=update,
            headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
        )
        assert answer.status == 503
        assert (await answer.json())["error"] == "unavailable"
        assert core.calls == 1
    finally:
        await bot.session.close()


async def test_a_secret_header_that_is_not_utf8_is_a_401_and_json_only_is_taken(
    aiohttp_client: ClientFactory, store: FileStore, caplog: pytest.LogCaptureFixture
) -> None:
    config = BotConfig("salesbot", TOKEN, mode="webhook", secret_token=SECRET)
    core = DownCore()
    bot = make_bot(config)
    try:
        handler = UpdateHandler(config, bot, core, MediaFetcher(store, 1024))
        app = web.Application()
        app.router.add_post(
            "/hooks/telegram/{bot_key}", WebhookReceiver({"salesbot": handler}).receive
        )
        client = await aiohttp_client(app)
        path = "/hooks/telegram/salesbot"
        body = json.dumps({"update_id": 6, "message": message(user(1), 1, text="hi")}).encode()
        json_type = ("Content-Type", b"application/json")
        hostile = [json_type, ("X-Telegram-Bot-Api-Secret-Token", LATIN1_BYTES)]
        answer = await raw_request(client, "POST", path, hostile, body)
        assert (answer.status, answer.json()["error"]) == (401, "unauthorized")
        plain = [
            ("Content-Type", b"text/plain"),
            ("X-Telegram-Bot-Api-Secret-Token", SECRET.encode()),
        ]
        answer = await raw_request(client, "POST", path, plain, body)
        assert (answer.status, answer.json()["error"]) == (415, "unsupported_media_type")
        assert core.calls == 0
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    finally:
        await bot.session.close()


async def test_an_update_whose_file_is_gone_is_stored_and_acknowledged(
    aiohttp_client: ClientFactory,
    bot_config: BotConfig,
    bot: Bot,
    ingest: IngestService,
    store: FileStore,
    tg: BotState,
    db: Database,
) -> None:
    config = replace(bot_config, mode="webhook", secret_token=SECRET)
    handler = UpdateHandler(config, bot, ingest, MediaFetcher(store, 1024))
    app = web.Application()
    app.router.add_post("/hooks/telegram/{bot_key}", WebhookReceiver({"salesbot": handler}).receive)
    client = await aiohttp_client(app)
    tg.add_file("doc-gone", b"expired", "documents/gone.pdf")
    tg.gone_downloads.add("documents/gone.pdf")
    doc = {"file_id": "doc-gone", "file_unique_id": "dg", "file_name": "gone.pdf"}
    update = {"update_id": 7, "message": message(user(3001), 1, document=doc)}
    for _ in range(2):  # Telegram sending it again is a no-op
        answer = await client.post(
            "/hooks/telegram/salesbot", json=update, headers={SECRET_HEADER: SECRET}
        )
        assert answer.status == 200
    [stored] = await db.read(lambda s: list(s.scalars(select(Message))))
    assert stored.attachments[0]["storage_key"] is None
    assert stored.attachments[0]["failure"] == "download failed: HTTP 404 Not Found"
