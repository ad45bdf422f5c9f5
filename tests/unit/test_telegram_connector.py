"""The Telegram connector's pure parts: configuration, deep links, update mapping, pacing."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.types import Update

from connectors.telegram.config import BotConfig, TelegramConfigError, parse_config
from connectors.telegram.mapping import EditedMessage, NewMessage, map_update, start_payload
from connectors.telegram.ratelimit import RateLimiter
from crm_core.contracts import IdentityRef
from crm_core.enums import IdentityKind

TOKEN = "123456789:TEST-token-for-the-unit-tests"


def _bot(**extra: Any) -> dict[str, Any]:
    return {"key": "salesbot", "token": TOKEN, **extra}


def test_config_with_payload_map_and_prefix_rules() -> None:
    config = parse_config(
        {
            "media_dir": "/tmp/m",
            "bots": [
                _bot(
                    start_payloads={"webinar_oct": {"utm_source": "vk", "funnel": "webinar"}},
                    start_prefixes={"marathon_": {"funnel": "marathon", "utm_medium": "post"}},
                ),
                _bot(
                    key="supportbot",
                    token="987654321:OTHER-token-for-the-unit-tests",
                    mode="webhook",
                    secret_token="s" * 20,
                ),
            ],
        }
    )
    sales = config.bots[0]
    exact = sales.start_link("webinar_oct")
    assert (exact.attribution.utm_source, exact.funnel) == ("vk", "webinar")
    rule = sales.start_link("marathon_may")
    assert rule.funnel == "marathon"
    assert (rule.attribution.utm_source, rule.attribution.utm_campaign) == (
        "telegram",
        "marathon_may",
    )
    assert rule.attribution.utm_medium == "post"
    other = sales.start_link("anything")
    assert (other.attribution.utm_campaign, other.funnel) == ("anything", None)
    assert TOKEN not in repr(sales)
    assert config.bots[1].mode == "webhook"


@pytest.mark.parametrize(
    ("table", "where"),
    [
        ({"bots": [_bot(key="bad key!")]}, "bots[0].key"),
        ({"bots": [_bot(), _bot()]}, "used twice"),
        ({"bots": [_bot(), _bot(key="other")]}, "bots[1].token: the same bot as bots[0]"),
        ({"bots": [_bot(api_base="ftp://x")]}, "bots[0].api_base"),
        ({"bots": [_bot(polling_timeout=99)]}, "bots[0].polling_timeout"),
        ({"bots": [_bot(start_payloads={"x": {"utm_sauce": "a"}})]}, "start_payloads.x.utm_sauce"),
        ({"bots": [_bot(mode="webhook", secret_token="short")]}, "bots[0].secret_token"),
        ({"bots": [_bot(colour="red")]}, "bots[0].colour"),
        ({"bot": []}, "channels.telegram.bot"),
        ({"bots": {}}, "channels.telegram.bots"),
        ({"max_file_bytes": 0}, "max_file_bytes"),
    ],
)
def test_bad_config_names_the_key(table: dict[str, Any], where: str) -> None:
    with pytest.raises(TelegramConfigError) as caught:
        parse_config(table)
    assert where in str(caught.value)
    assert TOKEN not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("/start webinar_oct", "webinar_oct"),
        ("/start@sales_bot webinar_oct", "webinar_oct"),
        ("/start", None),
        ("/starting now", None),
        ("hello", None),
        (None, None),
    ],
)
def test_start_payload(text: str | None, payload: str | None) -> None:
    assert start_payload(text) == payload


def _update(**fields: Any) -> Update:
    return Update.model_validate({"update_id": 1, **fields})


def _message(**content: Any) -> dict[str, Any]:
    sender = {"id": 42, "is_bot": False, "first_name": "Анна", "last_name": "К."}
    chat = {"id": 42, "type": "private"}
    return {"message_id": 7, "date": 1_780_000_000, "chat": chat, "from": sender, **content}


def test_a_text_message_maps_to_an_inbound_message() -> None:
    action = map_update(_update(message=_message(text="Привет")), BotConfig("salesbot", TOKEN))
    assert isinstance(action, NewMessage)
    inbound = action.message
    assert inbound.external_id == "42:7"
    assert inbound.channel_account == "salesbot"
    assert inbound.identities == (IdentityRef(IdentityKind.TELEGRAM, "42"),)
    assert inbound.display_name == "Анна К."
    assert inbound.occurred_at.tzinfo is not None
    assert inbound.raw_ref == "update:1"


def test_an_edit_carries_the_same_external_id() -> None:
    edited = _message(text="Привет!", edit_date=1_780_000_060)
    action = map_update(_update(edited_message=edited), BotConfig("salesbot", TOKEN))
    assert isinstance(action, EditedMessage)
    assert action.edit.external_id == "42:7"
    assert action.edit.text == "Привет!"
    assert action.edit.edited_at.timestamp() == 1_780_000_060


def test_own_shared_phone_is_an_identity_someone_elses_is_text() -> None:
    own = _message(contact={"phone_number": "+79161234567", "first_name": "Анна", "user_id": 42})
    action = map_update(_update(message=own), BotConfig("salesbot", TOKEN))
    assert isinstance(action, NewMessage)
    assert IdentityRef(IdentityKind.PHONE, "+79161234567") in action.message.identities
    other = _message(contact={"phone_number": "+79990000000", "first_name": "Олег"})
    action = map_update(_update(message=other), BotConfig("salesbot", TOKEN))
    assert isinstance(action, NewMessage)
    assert len(action.message.identities) == 1
    assert action.message.text == "[contact: Олег, +79990000000]"


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_the_bot_bucket_lets_30_through_then_paces() -> None:
    time = FakeTime()
    limiter = RateLimiter(30.0, 30.0, monotonic=time.monotonic, sleep=time.sleep)
    for _ in range(30):
        await limiter.acquire("bot")
    assert time.slept == []
    for _ in range(30):
        await limiter.acquire("bot")
    assert time.now == pytest.approx(1.0)  # 30 more took one second


async def test_buckets_are_per_key_and_forgotten_when_full() -> None:
    time = FakeTime()
    limiter = RateLimiter(1.0, 1.0, monotonic=time.monotonic, sleep=time.sleep, max_keys=2)
    await limiter.acquire("a")
    await limiter.acquire("b")
    assert time.slept == []
    time.now += 5
    await limiter.acquire("c")  # a and b refilled: dropped to make room
    assert len(limiter._buckets) == 1
