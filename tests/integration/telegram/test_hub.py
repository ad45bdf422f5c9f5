"""The connector inside the hub: pollers and webhook routes started by ``create_app``,
replies through the API and the outbox to the local Bot API server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import ContactIdentity, Deal, Funnel, Message
from hub.app import create_app
from hub.settings import Settings, SettingsError
from tests.factories import add_managers, api_token, count_rows
from tests.integration.telegram.conftest import SECRET, TOKEN
from tests.integration.telegram.fake_bot_api import BotState, FakeBotApi, message, user

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Hub = tuple[TestClient[Any, Any], dict[str, str]]


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.05)


def _settings(database_url: str, fake_api: FakeBotApi, tmp_path: Path, mode: str) -> Settings:
    bot: dict[str, Any] = {
        "key": "salesbot",
        "token": TOKEN,
        "mode": mode,
        "api_base": fake_api.base_url,
        "polling_timeout": 1,
        "start_payloads": {"webinar_oct": {"utm_campaign": "webinar_oct", "funnel": "webinar"}},
    }
    if mode == "webhook":
        bot["secret_token"] = SECRET
        bot["webhook_url"] = "https://hub.example.test/hooks/telegram/salesbot"
    return Settings(
        database_url=database_url,
        channels={"telegram": {"media_dir": str(tmp_path / "media"), "bots": [bot]}},
    )


async def _hub(
    mode: str,
    database_url: str,
    db: Database,
    clock: ManualClock,
    fake_api: FakeBotApi,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> Hub:
    token = await api_token(db)
    await add_managers(db, 2)
    app = create_app(_settings(database_url, fake_api, tmp_path, mode), clock=clock)
    client = await aiohttp_client(app)
    return client, {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def polling_hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    tg: BotState,
    fake_api: FakeBotApi,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> Hub:
    return await _hub("polling", database_url, db, clock, fake_api, tmp_path, aiohttp_client)


@pytest.fixture
async def webhook_hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    tg: BotState,
    fake_api: FakeBotApi,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> Hub:
    return await _hub("webhook", database_url, db, clock, fake_api, tmp_path, aiohttp_client)


async def _conversation_of(db: Database, external_id: str) -> int:
    def work(session: Session) -> int:
        found = session.scalar(
            select(Message.conversation_id).where(Message.external_id == external_id)
        )
        assert found is not None
        return found

    return await db.read(work)


async def test_polling_in_and_a_reply_out(
    polling_hub: Hub, tg: BotState, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client, auth = polling_hub
    tg.push({"message": message(user(4242), 1, text="Хочу на вебинар")})

    async def stored() -> bool:
        return await count_rows(db, Message) == 1

    await _eventually(stored)
    assert "deleteWebhook" in tg.calls
    conversation = await _conversation_of(db, "4242:1")
    answer = await client.post(
        f"/api/v1/conversations/{conversation}/messages", json={"text": "Записали!"}, headers=auth
    )
    assert answer.status == 202
    message_id = (await answer.json())["message_id"]

    async def sent() -> bool:
        row = await db.read(lambda s: s.get(Message, message_id))
        return row is not None and row.delivery_status == "sent"

    await _eventually(sent)
    [out] = tg.sent
    assert (out["chat_id"], out["text"]) == (4242, "Записали!")
    row = await db.read(lambda s: s.get(Message, message_id))
    assert row is not None
    assert row.external_id == f"4242:{out['message_id']}"
    assert TOKEN not in caplog.text


async def test_a_blocked_user_fails_the_reply_and_is_flagged(
    polling_hub: Hub, tg: BotState, db: Database
) -> None:
    client, auth = polling_hub
    tg.push({"message": message(user(4243), 1, text="Сколько стоит?")})

    async def stored() -> bool:
        return await count_rows(db, Message) == 1

    await _eventually(stored)
    tg.blocked.add(4243)
    conversation = await _conversation_of(db, "4243:1")
    path = f"/api/v1/conversations/{conversation}/messages"
    message_id = (await (await client.post(path, json={"text": "Ответ"}, headers=auth)).json())[
        "message_id"
    ]

    async def failed() -> bool:
        row = await db.read(lambda s: s.get(Message, message_id))
        return row is not None and row.delivery_status == "failed"

    await _eventually(failed)
    row = await db.read(lambda s: s.get(Message, message_id))
    assert row is not None
    assert row.delivery_error is not None
    assert "blocked" in row.delivery_error

    def identity(session: Session) -> ContactIdentity | None:
        return session.scalar(select(ContactIdentity).where(ContactIdentity.value == "4243"))

    flagged = await db.read(identity)
    assert flagged is not None
    assert flagged.unreachable_at is not None
    # the contact card shows it, with the reason, through the API
    card = await client.get(f"/api/v1/contacts/{flagged.contact_id}", headers=auth)
    assert card.status == 200
    shown = [i for i in (await card.json())["identities"] if i["value"] == "4243"]
    assert shown
    assert shown[0]["unreachable_at"] is not None
    assert "blocked" in shown[0]["unreachable_reason"]
    # the manager sees it: a further reply is refused with a clear reason
    again = await client.post(path, json={"text": "Ещё"}, headers=auth)
    assert again.status == 409
    assert tg.sent == []


async def test_webhook_stores_after_commit_and_checks_the_secret(
    webhook_hub: Hub, tg: BotState, db: Database
) -> None:
    client, _auth = webhook_hub
    assert tg.webhook is not None
    assert tg.webhook["secret_token"] == SECRET
    assert tg.webhook["url"].endswith("/hooks/telegram/salesbot")
    update = {"update_id": 1, "message": message(user(9001), 1, text="/start webinar_oct")}
    path = "/hooks/telegram/salesbot"
    header = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

    missing = await client.post(path, json=update)
    assert missing.status == 401
    assert (await missing.json())["error"] == "unauthorized"
    wrong = await client.post(
        path, json=update, headers={**header, "X-Telegram-Bot-Api-Secret-Token": "x" * 25}
    )
    assert wrong.status == 401
    assert await count_rows(db, Message) == 0

    ok = await client.post(path, json=update, headers=header)
    assert ok.status == 200
    assert await count_rows(db, Message) == 1  # committed before the 200
    again = await client.post(path, json={**update, "update_id": 2}, headers=header)
    assert again.status == 200  # the same message again (e.g. polling then webhook): a no-op
    assert await count_rows(db, Message) == 1

    def funnel(session: Session) -> str | None:
        return session.scalar(select(Funnel.code).join(Deal, Deal.funnel_id == Funnel.id))

    assert await db.read(funnel) == "webinar"

    bad_json = await client.post(
        path, data=b"{not json", headers={**header, "Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    assert (await bad_json.json())["error"] == "invalid_json"
    not_update = await client.post(path, json={"update_id": "x"}, headers=header)
    assert not_update.status == 400
    assert (await not_update.json())["error"] == "invalid_update"
    unknown = await client.post("/hooks/telegram/otherbot", json=update, headers=header)
    assert unknown.status == 404
    edit = message(user(9001), 1, text="/start webinar_oct и вопрос", edit_date=1_780_000_500)
    edited = await client.post(path, json={"update_id": 3, "edited_message": edit}, headers=header)
    assert edited.status == 200
    texts = await db.read(lambda s: list(s.scalars(select(Message.text))))
    assert texts == ["/start webinar_oct и вопрос"]


async def test_bad_configuration_names_the_key_and_hides_theapi_token(sqlite_url: str) -> None:
    bad = {"telegram": {"bots": [{"key": "salesbot", "token": TOKEN, "mode": "push"}]}}
    with pytest.raises(SettingsError, match=r"bots\[0\]\.mode") as caught:
        create_app(Settings(database_url=sqlite_url, channels=bad))
    assert TOKEN not in str(caught.value)
    no_secret = {"telegram": {"bots": [{"key": "b", "token": TOKEN, "mode": "webhook"}]}}
    with pytest.raises(SettingsError, match="secret_token"):
        create_app(Settings(database_url=sqlite_url, channels=no_secret))
    bad_token = {"telegram": {"bots": [{"key": "b", "token": "oops-secret"}]}}
    with pytest.raises(SettingsError, match="token") as token_error:
        create_app(Settings(database_url=sqlite_url, channels=bad_token))
    assert "oops-secret" not in str(token_error.value)
