"""Replies out through the local Bot API server: rate limits, 429, 403, 5xx, files."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from connectors.store import FileStore
from connectors.telegram.ratelimit import RateLimiter
from connectors.telegram.sender import TelegramSender
from crm_core.contracts import (
    Attachment,
    IdentityRef,
    OutboundMessage,
    PermanentSendError,
    RecipientUnreachableError,
    SendError,
)
from crm_core.enums import Channel, IdentityKind
from tests.integration.telegram.fake_bot_api import BotState, Failure, FakeBotApi


class FakeTime:
    """A monotonic clock that only the sleeps move."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def sender(bot: Bot, store: FileStore, fake_time: FakeTime) -> TelegramSender:
    return TelegramSender(
        {"salesbot": bot},
        store,
        per_chat=RateLimiter(1.0, 1.0, monotonic=fake_time.monotonic, sleep=fake_time.sleep),
        per_bot=RateLimiter(30.0, 30.0, monotonic=fake_time.monotonic, sleep=fake_time.sleep),
        sleep=fake_time.sleep,
        max_inline_wait=10,
    )


def _reply(
    chat: str = "4242",
    text: str = "Добрый день!",
    account: str = "salesbot",
    attachments: tuple[Attachment, ...] = (),
) -> OutboundMessage:
    return OutboundMessage(
        message_id=1,
        conversation_id=1,
        channel=Channel.TELEGRAM,
        channel_account=account,
        recipients=(IdentityRef(IdentityKind.TELEGRAM, chat),),
        text=text,
        attachments=attachments,
    )


async def test_a_reply_is_sent_and_gets_its_telegram_id(
    sender: TelegramSender, tg: BotState, fake_time: FakeTime
) -> None:
    receipt = await sender.send(_reply())
    assert receipt.external_id == f"4242:{tg.sent[0]['message_id']}"
    assert tg.sent[0]["text"] == "Добрый день!"
    assert fake_time.slept == []


async def test_429_is_honoured_then_the_reply_goes(
    sender: TelegramSender, tg: BotState, fake_time: FakeTime
) -> None:
    tg.failures[4242] = [Failure(429, "Too Many Requests: retry after 3", retry_after=3)]
    receipt = await sender.send(_reply())
    assert receipt.external_id is not None
    assert len(tg.sent) == 1
    assert 3 in fake_time.slept  # waited what Telegram asked


async def test_a_long_429_is_left_to_the_outbox(sender: TelegramSender, tg: BotState) -> None:
    tg.failures[4242] = [Failure(429, "Too Many Requests: retry after 60", retry_after=60)]
    with pytest.raises(SendError) as caught:
        await sender.send(_reply())
    assert not isinstance(caught.value, PermanentSendError)
    assert tg.sent == []


async def test_a_blocked_user_is_unreachable(sender: TelegramSender, tg: BotState) -> None:
    tg.blocked.add(4242)
    with pytest.raises(RecipientUnreachableError) as caught:
        await sender.send(_reply())
    assert caught.value.identity == IdentityRef(IdentityKind.TELEGRAM, "4242")
    assert "blocked" in caught.value.reason
    assert "TEST-token" not in caught.value.reason


@pytest.mark.parametrize("code", [500, 502])
async def test_server_errors_are_temporary(sender: TelegramSender, tg: BotState, code: int) -> None:
    tg.failures[4242] = [Failure(code, "Internal Server Error")]
    with pytest.raises(SendError) as caught:
        await sender.send(_reply())
    assert not isinstance(caught.value, PermanentSendError)
    await sender.send(_reply())  # the outbox's next attempt goes through
    assert len(tg.sent) == 1


async def test_a_network_error_is_temporary(bot: Bot, fake_time: FakeTime) -> None:
    dead = Bot(
        bot.token, session=AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9"))
    )
    try:
        with pytest.raises(SendError) as caught:
            await TelegramSender({"salesbot": dead}, sleep=fake_time.sleep).send(_reply())
        assert not isinstance(caught.value, PermanentSendError)
        assert bot.token not in str(caught.value)
    finally:
        await dead.session.close()


async def test_an_unknown_bot_or_chat_is_permanent(sender: TelegramSender) -> None:
    with pytest.raises(PermanentSendError):
        await sender.send(_reply(account="nobot"))
    with pytest.raises(PermanentSendError):
        await sender.send(_reply(chat="not-a-chat"))


async def test_files_go_as_documents_with_the_text_as_caption(
    sender: TelegramSender, tg: BotState, store: FileStore
) -> None:
    key = await store.put(b"%PDF-1.7 offer")
    offer = Attachment("offer.pdf", "application/pdf", 14, storage_key=key)
    receipt = await sender.send(_reply(text="Наше предложение", attachments=(offer,)))
    [sent] = tg.sent
    assert sent["document"]["file_name"] == "offer.pdf"
    assert sent["data"] == b"%PDF-1.7 offer"
    assert sent["caption"] == "Наше предложение"
    assert receipt.external_id == f"4242:{sent['message_id']}"


async def test_a_long_text_is_split(sender: TelegramSender, tg: BotState) -> None:
    await sender.send(_reply(text="я" * 5000))
    assert [len(s["text"]) for s in tg.sent] == [4096, 904]


async def test_replies_to_one_chat_are_paced_at_one_per_second(
    sender: TelegramSender, tg: BotState, fake_time: FakeTime
) -> None:
    for _ in range(3):
        await sender.send(_reply())
    await sender.send(_reply(chat="5555"))
    assert len(tg.sent) == 4
    assert sum(fake_time.slept) == pytest.approx(2.0)  # the second chat did not wait


async def test_each_channel_account_sends_through_its_own_bot(
    fake_api: FakeBotApi, tg: BotState, bot: Bot, fake_time: FakeTime
) -> None:
    other_token = "555555:SECOND-bot-token-for-tests"
    support = fake_api.add_bot(other_token, "support_bot")
    support_bot = Bot(
        other_token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake_api.base_url))
    )
    try:
        sender = TelegramSender({"salesbot": bot, "supportbot": support_bot}, sleep=fake_time.sleep)
        await sender.send(_reply(text="от продаж"))
        await sender.send(_reply(text="от поддержки", account="supportbot"))
    finally:
        await support_bot.session.close()
    assert [s["text"] for s in tg.sent] == ["от продаж"]
    assert [s["text"] for s in support.sent] == ["от поддержки"]
