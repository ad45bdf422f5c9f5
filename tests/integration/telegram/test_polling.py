"""Long polling against the local Bot API server, into SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.store import FileStore
from connectors.telegram.config import StartLink
from connectors.telegram.polling import Poller
from connectors.telegram.updates import UpdateHandler
from crm_core.contracts import (
    Attribution,
    Checkpoint,
    Edit,
    IdentityRef,
    InboundMessage,
    IngestResult,
)
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.ingest import IngestService
from crm_core.models import (
    Contact,
    ContactIdentity,
    Deal,
    Funnel,
    Message,
    MessageRevision,
    Touch,
)
from tests.factories import count_rows, inbound, phone
from tests.integration.telegram.conftest import TOKEN
from tests.integration.telegram.fake_bot_api import BotState, message, user


async def _drain(poller: Poller) -> None:
    """Poll until the server has nothing unconfirmed left."""
    while await poller.poll_once():
        pass


async def _messages(db: Database) -> list[Message]:
    def work(session: Session) -> list[Message]:
        return list(session.scalars(select(Message).order_by(Message.id)))

    return await db.read(work)


async def test_every_kind_of_message_is_stored(
    tg: BotState, handler: UpdateHandler, db: Database, store: FileStore
) -> None:
    ivan = user(1001)
    tg.add_file("photo-big", b"\xff\xd8 a photo", "photos/file_1.jpg")
    tg.add_file("doc-1", b"%PDF-1.7 price list", "documents/file_2.pdf")
    tg.add_file("voice-1", b"OggS voice", "voice/file_3.oga")
    tg.add_file("video-1", b"mp4 video", "videos/file_4.mp4")
    tg.add_file("note-1", b"mp4 round video", "video_notes/file_5.mp4")
    small = {"file_id": "photo-small", "file_unique_id": "s", "width": 90, "height": 90}
    big = {"file_id": "photo-big", "file_unique_id": "b", "width": 1280, "height": 960}
    tg.push({"message": message(ivan, 1, text="Здравствуйте! Сколько стоит обучение?")})
    tg.push({"message": message(ivan, 2, photo=[small, big], caption="Вот скриншот")})
    doc = {"file_id": "doc-1", "file_unique_id": "d", "file_name": "price.pdf"}
    tg.push({"message": message(ivan, 3, document={**doc, "mime_type": "application/pdf"})})
    voice = {"file_id": "voice-1", "file_unique_id": "v", "duration": 7, "mime_type": "audio/ogg"}
    tg.push({"message": message(ivan, 4, voice=voice)})
    video = {"file_id": "video-1", "file_unique_id": "vi", "width": 1, "height": 1, "duration": 3}
    tg.push({"message": message(ivan, 5, video=video)})
    note = {"file_id": "note-1", "file_unique_id": "n", "length": 240, "duration": 4}
    tg.push({"message": message(ivan, 6, video_note=note)})
    sticker = {
        "file_id": "st-1",
        "file_unique_id": "st",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
        "emoji": "👍",
        "set_name": "HotCherry",
    }
    tg.push({"message": message(ivan, 7, sticker=sticker)})
    tg.push({"message": message(ivan, 8, location={"latitude": 55.751244, "longitude": 37.6184})})
    quoted = message(ivan, 1, text="Здравствуйте! Сколько стоит обучение?")
    tg.push({"message": message(ivan, 9, text="Это важно", reply_to_message=quoted)})

    poller = Poller(handler)
    await _drain(poller)

    stored = await _messages(db)
    assert [m.external_id for m in stored] == [f"1001:{i}" for i in range(1, 10)]
    texts = [m.text for m in stored]
    assert texts[0] == "Здравствуйте! Сколько стоит обучение?"
    assert texts[1] == "Вот скриншот"
    assert texts[3] == "[voice message, 7 s]"
    assert texts[5] == "[video message, 4 s]"
    assert texts[6] == "[sticker 👍 from HotCherry]"
    assert texts[7] == "[location: 55.751244, 37.618400]"
    assert texts[8] == "↩ Здравствуйте! Сколько стоит обучение?\nЭто важно"
    photo = stored[1].attachments[0]
    assert photo["content_type"] == "image/jpeg"
    assert (await store.get(photo["storage_key"])) == b"\xff\xd8 a photo"
    pdf = stored[2].attachments[0]
    assert (pdf["name"], pdf["content_type"]) == ("price.pdf", "application/pdf")
    assert (await store.get(pdf["storage_key"])) == b"%PDF-1.7 price list"
    kinds = [m.attachments[0]["content_type"] for m in stored[3:6]]
    assert kinds == ["audio/ogg", "video/mp4", "video/mp4"]
    assert all(m.attachments == [] for m in stored[6:])
    assert await count_rows(db, Contact) == 1
    assert tg.pending() == []  # all confirmed by the last getUpdates


async def test_a_file_over_the_limit_is_kept_as_metadata(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    tg.add_file("big-doc", b"x" * (2 * 1024 * 1024), "documents/big.zip")
    doc = {"file_id": "big-doc", "file_unique_id": "bd", "file_name": "big.zip"}
    tg.push({"message": message(user(1002), 1, document=doc)})
    await _drain(Poller(handler))
    [stored] = await _messages(db)
    assert stored.attachments[0]["name"] == "big.zip"
    assert stored.attachments[0]["storage_key"] is None
    assert "getFile" in tg.calls


async def test_a_download_that_fails_on_5xx_is_stored_as_failed_and_confirmed(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    tg.add_file("doc-9", b"contract", "documents/contract.pdf")
    tg.broken_downloads.add("documents/contract.pdf")
    doc = {"file_id": "doc-9", "file_unique_id": "d9", "file_name": "contract.pdf"}
    tg.push({"message": message(user(1003), 1, document=doc)})
    poller = Poller(handler)
    await _drain(poller)
    [stored] = await _messages(db)
    [attachment] = stored.attachments
    assert attachment["storage_key"] is None
    assert attachment["failure"] == "download failed: HTTP 502 Bad Gateway"
    assert TOKEN not in str(stored.attachments)
    assert tg.pending() == []


async def test_a_file_gone_404_does_not_stall_the_other_clients_of_the_bot(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    tg.add_file("doc-gone", b"expired", "documents/gone.pdf")
    tg.gone_downloads.add("documents/gone.pdf")
    doc = {"file_id": "doc-gone", "file_unique_id": "dg", "file_name": "gone.pdf"}
    tg.push({"message": message(user(2001), 1, text="Добрый день")})
    tg.push({"message": message(user(2002), 1, document=doc, caption="Договор")})
    last = tg.push({"message": message(user(2003), 1, text="Есть вопрос")})
    slept: list[float] = []

    async def no_sleep(delay: float) -> None:
        slept.append(delay)

    poller = Poller(handler, sleep=no_sleep)
    assert await poller.poll_once() == 3  # one round, no exception, no backoff
    assert poller.offset == last + 1
    stored = await _messages(db)
    assert {m.external_id for m in stored} == {"2001:1", "2002:1", "2003:1"}
    assert len(stored) == 3
    [failed] = next(m for m in stored if m.external_id == "2002:1").attachments
    assert failed["name"] == "gone.pdf"
    assert failed["storage_key"] is None
    assert failed["failure"] == "download failed: HTTP 404 Not Found"
    assert await poller.poll_once() == 0
    assert tg.pending() == []
    assert tg.calls.count("getFile") == 1  # a 4xx is not tried again
    assert slept == []

    tg.confirmed_offset = 0  # the same batch delivered again (a crash before confirming)
    await _drain(Poller(handler, sleep=no_sleep))
    assert await count_rows(db, Message) == 3
    assert await count_rows(db, Contact) == 3


class PowerCutError(Exception):
    """The process dies here."""


class CrashingIngestor:
    """The core that 'crashes' (the process dies) after ``survive`` commits."""

    def __init__(self, inner: IngestService, survive: int) -> None:
        self.inner = inner
        self.left = survive

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        if self.left == 0:
            raise PowerCutError
        self.left -= 1
        return await self.inner.ingest(message, checkpoint)

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        return await self.inner.checkpoint(channel, channel_account, key)

    async def edit(self, edit: Edit) -> bool:
        return await self.inner.edit(edit)

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        return await self.inner.mark_unreachable(identity, reason)


async def test_a_crash_between_receiving_and_committing_loses_and_doubles_nothing(
    tg: BotState, handler: UpdateHandler, ingest: IngestService, db: Database
) -> None:
    for i in range(1, 6):
        tg.push({"message": message(user(1000 + i), i, text=f"вопрос {i}")})
    crashing = UpdateHandler(
        handler.config, handler.bot, CrashingIngestor(ingest, survive=3), handler._fetcher
    )
    with pytest.raises(PowerCutError):
        await Poller(crashing).poll_once()
    assert await count_rows(db, Message) == 3
    assert len(tg.pending()) == 5  # nothing was confirmed

    # a new process polls again: the same five come back, the first three are repeats
    await _drain(Poller(handler))
    stored = await _messages(db)
    assert sorted(str(m.external_id) for m in stored) == [f"{1000 + i}:{i}" for i in range(1, 6)]
    assert tg.pending() == []

    # and a crash after the commit but before the confirmation: all come again, no-ops
    tg.push({"message": message(user(1009), 9, text="ещё")})
    await Poller(handler).poll_once()  # committed, not yet confirmed
    assert len(tg.pending()) == 1
    await _drain(Poller(handler))
    assert await count_rows(db, Message) == 6


async def test_a_burst_of_200_updates_is_stored_once(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    for i in range(200):
        tg.push({"message": message(user(5000 + i % 40), 100 + i, text=f"сообщение {i}")})
    poller = Poller(handler)
    await _drain(poller)
    assert poller.committed == 200
    assert await count_rows(db, Message) == 200
    assert await count_rows(db, Contact) == 40
    assert tg.get_updates_calls == 3  # 100 + 100 + the confirming empty call


async def test_a_shared_phone_merges_two_contacts(
    tg: BotState, handler: UpdateHandler, ingest: IngestService, db: Database
) -> None:
    # the same person called earlier: a contact known only by the phone
    await ingest.ingest(inbound(phone("8 (916) 123-45-67"), name="Иван (звонок)"))
    ivan = user(4242)
    tg.push({"message": message(ivan, 1, text="Добрый день")})
    contact = {"phone_number": "+79161234567", "first_name": "Ivan", "user_id": 4242}
    tg.push({"message": message(ivan, 2, contact=contact)})
    # someone else's card is only text: it is not the sender's identity
    other = {"phone_number": "+79990000000", "first_name": "Маша"}
    tg.push({"message": message(ivan, 3, contact=other)})
    await _drain(Poller(handler))

    def live(session: Session) -> list[tuple[int, str, str]]:
        rows = session.execute(
            select(ContactIdentity.contact_id, ContactIdentity.kind, ContactIdentity.value)
            .join(Contact, Contact.id == ContactIdentity.contact_id)
            .where(Contact.merged_into_id.is_(None))
            .order_by(ContactIdentity.kind)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    rows = await db.read(live)
    assert {(kind, value) for _, kind, value in rows} == {
        ("phone", "+79161234567"),
        ("telegram", "4242"),
    }
    assert len({contact_id for contact_id, _, _ in rows}) == 1  # one person now
    texts = [m.text for m in await _messages(db)]
    assert texts[-1] == "[contact: Маша, +79990000000]"


async def test_a_deep_link_attributes_the_lead(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    tg.push({"message": message(user(777), 1, text="/start webinar_oct")})
    tg.push({"message": message(user(778), 1, text="/start spring_promo")})
    await _drain(Poller(handler))

    def read(session: Session) -> list[tuple[str, str | None, str | None]]:
        rows = session.execute(
            select(Funnel.code, Touch.utm_source, Touch.utm_campaign)
            .select_from(Deal)
            .join(Funnel, Funnel.id == Deal.funnel_id)
            .join(Touch, Touch.contact_id == Deal.contact_id)
            .order_by(Deal.id)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    assert await db.read(read) == [
        ("webinar", "telegram", "webinar_oct"),
        ("consultation", "telegram", "spring_promo"),  # unknown payload: still its campaign
    ]


async def test_a_deep_link_to_a_missing_funnel_still_stores_the_lead(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    config = replace(
        handler.config,
        start_payloads={"promo": StartLink(Attribution(utm_campaign="promo"), "no_such_funnel")},
    )
    misconfigured = UpdateHandler(config, handler.bot, handler._ingestor, handler._fetcher)
    tg.push({"message": message(user(779), 1, text="/start promo")})
    await _drain(Poller(misconfigured))

    def read(session: Session) -> list[tuple[str, str | None]]:
        rows = session.execute(
            select(Funnel.code, Touch.utm_campaign)
            .select_from(Deal)
            .join(Funnel, Funnel.id == Deal.funnel_id)
            .join(Touch, Touch.contact_id == Deal.contact_id)
        )
        return [(r[0], r[1]) for r in rows]

    assert await db.read(read) == [("consultation", "promo")]


async def test_an_edit_updates_the_message_and_keeps_its_history(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    ivan = user(31337)
    tg.push({"message": message(ivan, 5, text="Нужно 10 мест")})
    edited: dict[str, Any] = message(ivan, 5, text="Нужно 12 мест", edit_date=1_780_000_100)
    tg.push({"edited_message": edited})
    # an edit of a message we never saw is stored as the message
    tg.push({"edited_message": message(ivan, 4, text="старое", edit_date=1_780_000_200)})
    await _drain(Poller(handler))
    stored = {m.external_id: m.text for m in await _messages(db)}
    assert stored == {"31337:5": "Нужно 12 мест", "31337:4": "старое"}

    def history(session: Session) -> list[str]:
        return list(session.scalars(select(MessageRevision.text)))

    assert await db.read(history) == ["Нужно 10 мест"]


async def test_group_chats_and_unknown_updates_are_confirmed_and_skipped(
    tg: BotState, handler: UpdateHandler, db: Database
) -> None:
    group = message(user(1), 1, text="всем привет")
    group["chat"] = {"id": -100123, "type": "supergroup", "title": "Чат"}
    tg.push({"message": group})
    tg.push({"poll": {"id": "p", "question": "?", "options": []}})
    await _drain(Poller(handler))
    assert await count_rows(db, Message) == 0
    assert tg.pending() == []
