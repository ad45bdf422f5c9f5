"""A file the Bot API could not hand over for a while: the message is stored at once with
the attachment failed, and the file is fetched again in the background (parked items,
channel ``telegram``) until it comes or the retry limit parks it for good."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.store import FileStore
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.polling import Poller
from connectors.telegram.refetch import Refetcher
from connectors.telegram.updates import UpdateHandler
from crm_core import parked
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.ingest import IngestService
from crm_core.journal import Journal
from crm_core.late_files import LateFiles
from crm_core.models import AuditEntry, Message, ParkedItem
from tests.factories import api_token, emitted
from tests.integration.telegram.conftest import TOKEN
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user
from tests.integration.telegram.test_hub import ClientFactory, _eventually, _hub

PATH = "documents/contract.pdf"
DOC = {"file_id": "doc-7", "file_unique_id": "d7", "file_name": "contract.pdf"}
DATA = b"%PDF-1.7 the signed contract"


@pytest.fixture
def late(db: Database, clock: ManualClock) -> LateFiles:
    return LateFiles(db, clock, "telegram", max_attempts=3)


@pytest.fixture
def late_handler(
    bot_config: BotConfig, bot: Bot, ingest: IngestService, store: FileStore, late: LateFiles
) -> UpdateHandler:
    return UpdateHandler(bot_config, bot, ingest, MediaFetcher(store, 1024 * 1024), late)


@pytest.fixture
def refetcher(bot: Bot, store: FileStore, late: LateFiles) -> Refetcher:
    return Refetcher(MediaFetcher(store, 1024 * 1024), {"salesbot": bot}, late)


async def _only_message(db: Database) -> Message:
    [row] = await db.read(lambda s: list(s.scalars(select(Message))))
    return row


async def _parked_rows(db: Database) -> list[ParkedItem]:
    return await db.read(lambda s: list(s.scalars(select(ParkedItem).order_by(ParkedItem.id))))


async def _receive(tg: BotState, handler: UpdateHandler) -> None:
    tg.add_file("doc-7", DATA, PATH)
    tg.push({"message": message(user(5001), 3, document=DOC, caption="Договор")})
    poller = Poller(handler)
    while await poller.poll_once():
        pass
    assert tg.pending() == []  # confirmed at once, the file notwithstanding


async def test_a_5xx_file_is_stored_failed_then_filled_in_by_a_retry(
    tg: BotState,
    late_handler: UpdateHandler,
    refetcher: Refetcher,
    db: Database,
    clock: ManualClock,
    store: FileStore,
) -> None:
    tg.flaky_downloads[PATH] = 1  # a 500, then the file
    await _receive(tg, late_handler)
    stored = await _only_message(db)
    [attachment] = stored.attachments
    assert attachment["storage_key"] is None
    assert attachment["failure"] == "download failed: HTTP 500 Internal Server Error"
    [item] = await _parked_rows(db)
    assert (item.channel, item.account, item.item_key) == ("telegram", "salesbot", "5001:3/0")
    assert (item.status, item.attempts) == ("retrying", 1)
    assert item.detail["message_id"] == str(stored.id)
    assert item.detail["attachment"] == "0"
    assert item.detail["file_id"] == "doc-7"

    assert await refetcher.retry_due() == 0  # not due before the backoff
    assert tg.downloads == [PATH]
    clock.advance(timedelta(minutes=1))
    assert await refetcher.retry_due() == 1
    filled = await _only_message(db)
    [attachment] = filled.attachments
    assert "failure" not in attachment
    assert attachment["name"] == "contract.pdf"
    assert attachment["size"] == len(DATA)
    key = attachment["storage_key"]
    assert isinstance(key, str)
    assert await store.get(key) == DATA
    assert await _parked_rows(db) == []
    [event] = await emitted(db, "message.edited")
    assert event["message_id"] == stored.id
    assert event["message"]["attachments"][0]["storage_key"] == key
    actions = await db.read(lambda s: list(s.scalars(select(AuditEntry.action))))
    assert "message.attachment_stored" in actions
    clock.advance(timedelta(hours=2))
    assert await refetcher.retry_due() == 0  # nothing left to fetch
    assert tg.downloads == [PATH, PATH]


async def test_a_404_file_is_not_retried(
    tg: BotState,
    late_handler: UpdateHandler,
    refetcher: Refetcher,
    db: Database,
    clock: ManualClock,
) -> None:
    tg.gone_downloads.add(PATH)
    await _receive(tg, late_handler)
    [attachment] = (await _only_message(db)).attachments
    assert attachment["failure"] == "download failed: HTTP 404 Not Found"
    assert await _parked_rows(db) == []
    clock.advance(timedelta(hours=3))
    assert await refetcher.retry_due() == 0
    assert tg.downloads == [PATH]


async def test_the_retry_limit_parks_the_file_for_good_and_an_admin_may_retry(
    tg: BotState,
    late_handler: UpdateHandler,
    refetcher: Refetcher,
    db: Database,
    clock: ManualClock,
) -> None:
    tg.flaky_downloads[PATH] = 1_000
    await _receive(tg, late_handler)
    for _ in range(5):
        clock.advance(timedelta(hours=1))
        assert await refetcher.retry_due() == 0
    [item] = await _parked_rows(db)
    assert (item.status, item.attempts, item.next_attempt_at) == ("parked", 3, None)
    assert len(tg.downloads) == 3  # max_attempts in all, the first one included
    [attachment] = (await _only_message(db)).attachments
    assert attachment["storage_key"] is None
    assert "500" in attachment["failure"]

    tg.flaky_downloads[PATH] = 0  # healed; an admin tries again by hand

    def retry(session: Session) -> None:
        journal = Journal("admin", clock.now())
        assert parked.retry_now(session, journal, item.id) is not None
        journal.flush(session)

    await db.write(retry)
    assert await refetcher.retry_due() == 1
    [attachment] = (await _only_message(db)).attachments
    assert attachment["storage_key"] is not None
    assert await _parked_rows(db) == []


async def test_in_the_hub_the_file_shows_in_parked_and_downloads_after_the_retry(
    database_url: str,
    db: Database,
    clock: ManualClock,
    tg: BotState,
    fake_api: FakeBotApi,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from hub.telegram import TELEGRAM

    caplog.set_level(logging.DEBUG)
    client, auth = await _hub(
        "polling", database_url, db, clock, fake_api, tmp_path, aiohttp_client
    )
    admin = {"Authorization": f"Bearer {await api_token(db, 'admin')}"}
    tg.add_file("doc-7", DATA, PATH)
    tg.flaky_downloads[PATH] = 1
    update_id = tg.push({"message": message(user(5002), 4, document=DOC)})

    async def stored() -> bool:
        rows = await db.read(lambda s: list(s.scalars(select(Message))))
        return len(rows) == 1 and bool(await _parked_rows(db))

    await _eventually(stored)
    row = await _only_message(db)
    path = f"/api/v1/messages/{row.id}/attachments/0"
    assert (await client.get(path, headers=auth)).status == 404  # not there yet
    items = await _page(client, admin, channel="telegram")
    [item] = items
    assert (item["account"], item["item_key"], item["status"]) == (
        "salesbot",
        "5002:4/0",
        "retrying",
    )
    assert item["detail"]["message_id"] == str(row.id)

    answer = await client.post(f"/api/v1/parked/{item['id']}/retry", headers=admin)
    assert answer.status == 200
    refetcher = client.app[TELEGRAM].refetcher
    assert refetcher is not None
    assert await refetcher.retry_due() == 1
    download = await client.get(path, headers=auth)
    assert download.status == 200
    assert await download.read() == DATA
    assert await _page(client, admin, channel="telegram") == []
    assert TOKEN not in caplog.text
    assert f"update {update_id}" in caplog.text


async def _page(client: TestClient[Any, Any], headers: dict[str, str], **query: str) -> Any:
    response = await client.get("/api/v1/parked", params=query, headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]
