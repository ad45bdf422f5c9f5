"""The webhook receiver on its own: an update that cannot be committed is not acknowledged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from connectors.store import FileStore
from connectors.telegram.client import make_bot
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.updates import UpdateHandler
from connectors.telegram.webhook import WebhookReceiver
from crm_core.contracts import Checkpoint, Edit, IdentityRef, InboundMessage, IngestResult
from crm_core.enums import Channel
from tests.integration.telegram.conftest import SECRET, TOKEN
from tests.integration.telegram.fake_bot_api import message, user

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
