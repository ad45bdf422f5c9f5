"""Log lines about an item name the bot and the update, and never the token or the
webhook secret (the Bot API's URLs carry the token)."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest
from aiogram import Bot

from connectors.store import FileStore
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.polling import Poller
from connectors.telegram.updates import UpdateHandler
from connectors.telegram.webhook import set_webhook
from crm_core.ingest import IngestService
from tests.integration.telegram.conftest import SECRET, TOKEN
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user


def _all_text(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as a handler would write it: the message, and any traceback."""
    formatter = logging.Formatter()
    return "\n".join(formatter.format(r) for r in caplog.records)


async def test_a_poll_logs_the_bot_and_the_update_never_the_token(
    tg: BotState,
    bot_config: BotConfig,
    bot: Bot,
    ingest: IngestService,
    store: FileStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = UpdateHandler(bot_config, bot, ingest, MediaFetcher(store, 1024 * 1024))
    tg.add_file("doc-1", b"broken", "documents/broken.pdf")
    tg.add_file("doc-2", b"gone", "documents/gone.pdf")
    tg.broken_downloads.add("documents/broken.pdf")
    tg.gone_downloads.add("documents/gone.pdf")
    broken = {"file_id": "doc-1", "file_unique_id": "d1", "file_name": "broken.pdf"}
    gone = {"file_id": "doc-2", "file_unique_id": "d2", "file_name": "gone.pdf"}
    missing = {"file_id": "doc-x", "file_unique_id": "dx", "file_name": "never.pdf"}
    first = tg.push({"message": message(user(6001), 1, document=broken)})
    second = tg.push({"message": message(user(6002), 1, document=gone)})
    third = tg.push({"message": message(user(6003), 1, document=missing)})
    in_group = {**message(user(6004), 1, text="hi"), "chat": {"id": -5, "type": "group"}}
    group = tg.push({"message": in_group})
    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)
        tg.webhook = None  # the other consumer went away

    poller = Poller(handler, sleep=no_sleep)
    while await poller.poll_once():
        pass
    tg.webhook = {"url": "https://elsewhere.example.test"}  # getUpdates answers 409 once
    await poller._with_retries(poller.poll_once)
    assert slept == [1.0]

    text = _all_text(caplog)
    assert caplog.records
    assert TOKEN not in text
    assert TOKEN.split(":", 1)[1] not in text  # not even the secret half
    for update_id in (first, second, third):
        assert f"update {update_id}" in text
    assert f"update {group} is not kept" in text
    assert "bot salesbot: message 6001:1" in text
    assert "bot salesbot: message 6002:1" in text
    assert "bot salesbot: message 6003:1" in text


async def test_a_refused_set_webhook_logs_neither_the_token_nor_the_secret(
    fake_api: FakeBotApi,
    tg: BotState,
    bot_config: BotConfig,
    bot: Bot,
    ingest: IngestService,
    store: FileStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    config = replace(bot_config, mode="webhook", secret_token=SECRET)
    handler = UpdateHandler(config, bot, ingest, MediaFetcher(store, 1024 * 1024))
    await set_webhook(handler, "https://hub.example.test/hooks/telegram/salesbot")
    fake_api.bots.clear()  # the token is refused from now on
    with pytest.raises(Exception):  # noqa: B017, PT011 (whatever aiogram raises for a 401)
        await set_webhook(handler, "https://hub.example.test/hooks/telegram/salesbot")
    text = _all_text(caplog)
    assert "bot salesbot: setWebhook failed" in text
    assert TOKEN not in text
    assert SECRET not in text
