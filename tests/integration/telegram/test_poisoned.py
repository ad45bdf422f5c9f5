"""An update whose handling keeps raising (not a refusal the core explains) is parked after
``poison_attempts`` failures and skipped: the bot's other clients are not kept waiting, the
offset moves past it, and an admin's retry handles it again (rule 9 of the house)."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.store import FileStore
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.poisoned import PoisonedUpdates
from connectors.telegram.polling import Poller
from connectors.telegram.updates import UpdateHandler
from connectors.telegram.webhook import SECRET_HEADER, WebhookReceiver
from crm_core import parked
from crm_core.clock import ManualClock
from crm_core.contracts import Checkpoint, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.late_files import LateFiles
from crm_core.models import Message, ParkedItem
from crm_core.poisoned import PoisonedItems
from hub.app import create_app
from hub.keys import INGEST
from tests.factories import add_managers, api_token
from tests.integration.telegram.conftest import SECRET, TOKEN
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user
from tests.integration.telegram.test_hub import ClientFactory, _eventually, _settings

POISON = "666:1"  # the message (chat 666, message 1) whose handling raises


class Poisoned:
    """Wraps the core's ``ingest``: raises for the poisoned message while ``sick``."""

    def __init__(self, ingest: Any) -> None:
        self.ingest_inner = ingest
        self.sick = True
        self.calls = 0

    async def __call__(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        if self.sick and message.external_id == POISON:
            self.calls += 1
            raise RuntimeError("the core fell over this one")
        result: IngestResult = await self.ingest_inner(message, checkpoint)
        return result


class PoisonedIngest(IngestService):
    poison: Poisoned

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        return await self.poison(message, checkpoint)


def _push_around_the_poison(tg: BotState) -> int:
    """10 clients, the poisoned update, 9 more clients and the poisoned chat's next
    message: 20 updates that must be stored, one that cannot be."""
    for n in range(10):
        tg.push({"message": message(user(1000 + n), 1, text=f"hello {n}")})
    poisoned = tg.push({"message": message(user(666), 1, text="the poisoned one")})
    for n in range(10, 19):
        tg.push({"message": message(user(1000 + n), 1, text=f"hello {n}")})
    tg.push({"message": message(user(666), 2, text="and after it")})
    return poisoned


async def _messages(db: Database) -> list[str]:
    def work(session: Session) -> list[str]:
        return sorted(session.scalars(select(Message.external_id)))

    return await db.read(work)


async def _parked_rows(db: Database) -> list[ParkedItem]:
    return await db.read(lambda s: list(s.scalars(select(ParkedItem).order_by(ParkedItem.id))))


@pytest.fixture
async def sick_ingest(db: Database, clock: ManualClock) -> PoisonedIngest:
    await add_managers(db, 2)
    service = PoisonedIngest(db, clock, IngestPolicy())
    service.poison = Poisoned(super(PoisonedIngest, service).ingest)
    return service


async def test_a_poisoned_update_is_parked_after_the_attempts_and_the_rest_flows(
    tg: BotState,
    bot_config: BotConfig,
    bot: Bot,
    sick_ingest: PoisonedIngest,
    store: FileStore,
    db: Database,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = UpdateHandler(bot_config, bot, sick_ingest, MediaFetcher(store, 1024 * 1024))
    ledger = PoisonedItems(db, clock, "telegram", "update:")
    poller = Poller(handler, ledger=ledger, store=store, poison_attempts=3)
    poisoned = _push_around_the_poison(tg)

    failed_rounds = 0
    for _ in range(10):
        try:
            if not await poller.poll_once():
                break
        except RuntimeError:
            failed_rounds += 1
            assert tg.pending() != []  # nothing past the poisoned update is confirmed yet
    assert failed_rounds == 2  # the third failure parks it
    assert sick_ingest.poison.calls == 3
    assert tg.pending() == []  # the offset moved past it: the stand-in does not resend it
    assert poller.offset == poisoned + 11
    stored = await _messages(db)
    assert len(stored) == 20
    assert POISON not in stored
    assert "666:2" in stored  # the poisoned chat's next message went through

    [item] = await _parked_rows(db)
    assert (item.channel, item.account, item.item_key) == (
        "telegram",
        "salesbot",
        f"update:{poisoned}",
    )
    assert (item.status, item.attempts, item.next_attempt_at) == ("parked", 3, None)
    assert item.reason == "RuntimeError: the core fell over this one"
    assert item.detail["update_id"] == str(poisoned)
    raw = json.loads(await store.get(item.detail["raw"]))
    assert raw["update_id"] == poisoned
    assert raw["message"]["text"] == "the poisoned one"
    assert f"bot salesbot: update {poisoned} failed 3 times: parked" in caplog.text
    assert TOKEN not in caplog.text

    # an admin retries while it is still sick: it stays parked, with one more attempt
    await _retry(db, clock, item.id)
    assert await LateFiles(db, clock, "telegram", 3).due() == []  # not a file
    assert await poller.retry_parked() == 0
    [again] = await _parked_rows(db)
    assert (again.status, again.attempts) == ("parked", 1)

    sick_ingest.poison.sick = False  # healed; an admin retries once more
    await _retry(db, clock, item.id)
    assert await poller.retry_parked() == 1
    assert POISON in await _messages(db)
    assert await _parked_rows(db) == []


async def _retry(db: Database, clock: ManualClock, item_id: int) -> None:
    def work(session: Session) -> None:
        journal = Journal("admin", clock.now())
        assert parked.retry_now(session, journal, item_id) is not None
        journal.flush(session)

    await db.write(work)


async def test_in_the_hub_the_poisoned_update_is_parked_counted_and_retried(
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
    admin = {"Authorization": f"Bearer {await api_token(db, 'admin')}"}
    await add_managers(db, 2)
    settings = _settings(database_url, fake_api, tmp_path, "polling")
    settings.channels["telegram"]["poison_attempts"] = 2  # one backoff of a second
    client = await aiohttp_client(create_app(settings, clock=clock))
    sick = Poisoned(client.app[INGEST].ingest)  # the pollers' core raises for one update
    client.app[INGEST].ingest = sick
    poisoned = _push_around_the_poison(tg)

    async def done() -> bool:
        return len(await _messages(db)) == 20 and bool(await _parked_rows(db))

    await _eventually(done, seconds=30)
    await _eventually(lambda: _confirmed(tg))
    assert sick.calls == 2
    [item] = await _page(client, admin, channel="telegram")
    assert (item["account"], item["item_key"], item["status"], item["attempts"]) == (
        "salesbot",
        f"update:{poisoned}",
        "parked",
        2,
    )
    channels = await client.get("/api/v1/channels", headers=admin)
    assert channels.status == 200
    [bot] = [c for c in (await channels.json())["channels"] if c["account"] == "salesbot"]
    assert bot["parked"] == {"count": 1, "url": "/api/v1/parked?channel=telegram"}

    sick.sick = False
    answer = await client.post(f"/api/v1/parked/{item['id']}/retry", headers=admin)
    assert answer.status == 200
    poller = client.app[TELEGRAM].pollers["salesbot"]
    assert await poller.retry_parked() == 1
    assert POISON in await _messages(db)
    assert await _page(client, admin, channel="telegram") == []
    assert TOKEN not in caplog.text
    assert f"update {poisoned}" in caplog.text


async def _confirmed(tg: BotState) -> bool:
    return tg.pending() == []


async def _page(client: TestClient[Any, Any], headers: dict[str, str], **query: str) -> Any:
    response = await client.get("/api/v1/parked", params=query, headers=headers)
    assert response.status == 200, await response.text()
    return (await response.json())["items"]


async def test_in_webhook_mode_a_poisoned_update_is_parked_and_acknowledged(
    aiohttp_client: ClientFactory,
    bot_config: BotConfig,
    bot: Bot,
    sick_ingest: PoisonedIngest,
    store: FileStore,
    db: Database,
    clock: ManualClock,
) -> None:
    """Telegram resends what it got no 2xx for, then gives up: the hub parks the update
    after the attempts and answers 200, so that it is kept (and retried by hand)."""
    config = replace(bot_config, mode="webhook", secret_token=SECRET)
    handler = UpdateHandler(config, bot, sick_ingest, MediaFetcher(store, 1024 * 1024))
    ledger = PoisonedItems(db, clock, "telegram", "update:")
    poison = PoisonedUpdates(handler, ledger, store, 3)
    app = web.Application()
    app.router.add_post(
        "/hooks/telegram/{bot_key}",
        WebhookReceiver({"salesbot": handler}, {"salesbot": poison}).receive,
    )
    client = await aiohttp_client(app)
    headers = {SECRET_HEADER: SECRET}
    sick = {"update_id": 70, "message": message(user(666), 1, text="the poisoned one")}
    answers = [await client.post("/hooks/telegram/salesbot", json=sick, headers=headers)]
    answers.append(await client.post("/hooks/telegram/salesbot", json=sick, headers=headers))
    good = {"update_id": 71, "message": message(user(1001), 1, text="hello")}
    assert (await client.post("/hooks/telegram/salesbot", json=good, headers=headers)).status == 200
    answers.append(await client.post("/hooks/telegram/salesbot", json=sick, headers=headers))
    assert [a.status for a in answers] == [503, 503, 200]  # the third failure parks it
    assert (await answers[-1].json())["parked"] is True
    assert await _messages(db) == ["1001:1"]
    [item] = await _parked_rows(db)
    assert (item.item_key, item.status, item.attempts) == ("update:70", "parked", 3)

    sick_ingest.poison.sick = False  # healed; an admin retries it
    await _retry(db, clock, item.id)
    assert await poison.retry_parked() == 1
    assert POISON in await _messages(db)
    assert await _parked_rows(db) == []
