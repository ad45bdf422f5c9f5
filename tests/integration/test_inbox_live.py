"""The inbox's WebSocket, replies by another channel, and what untrusted files look like."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.db import Database
from crm_core.journal import EVENTS_TOPIC, unpacked
from crm_core.models import Message, OutboxMessage
from hub.files import FILES
from tests.integration.conftest import World, inbound_body

Client = TestClient[Any, Any]


async def _login(client: Client, who: str) -> str:
    response = await client.post(
        "/api/v1/session", json={"email": f"{who}@example.test", "password": f"{who}-password"}
    )
    assert response.status == 200
    return str((await response.json())["csrf_token"])


async def _events_until(
    socket: aiohttp.ClientWebSocketResponse, wanted: str, key: str, value: int
) -> list[dict[str, Any]]:
    """Everything the socket says until the ``wanted`` event with ``key == value``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while True:
            event = await socket.receive_json()
            seen.append(event)
            if event.get("event") == wanted and event.get(key) == value:
                return seen


async def _all_events_delivered(db: Database) -> None:
    """The relay has handed every message event to the bus (the people made before the
    hub started are dated by another clock, and their events are left alone)."""

    def pending(session: Session) -> int:
        rows = session.scalars(
            select(OutboxMessage.payload).where(
                OutboxMessage.topic == EVENTS_TOPIC, OutboxMessage.status == "pending"
            )
        )
        return sum(p["event"] == "message.created" for row in rows for _k, p in unpacked(row))

    for _ in range(500):
        if not await db.read(pending):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the relay did not deliver the events within 10 s")


async def test_live_updates_carry_only_what_the_manager_may_see(world: World, db: Database) -> None:
    client = world.client
    await _login(client, "ann")
    integration = world.auth["integration"]

    async def message(n: int, external_id: str) -> int:
        body = {**inbound_body(n), "external_id": external_id, "text": external_id}
        response = await client.post("/api/v1/inbound", json=body, headers=integration)
        assert response.ok
        return int((await response.json())["message_id"])

    async with client.ws_connect("/api/v1/live") as socket:
        assert (await socket.receive_json())["event"] == "hello"
        await message(2, "for-bob")
        await _all_events_delivered(db)
        # The socket reads its events in order: once this one is out, Bob's was judged.
        sentinel = await message(1, "for-ann")
        seen = await _events_until(socket, "message.created", "message_id", sentinel)
        # The head hands Bob's conversation to Ann: she hears of it at once.
        moved = await client.post(
            f"/api/v1/conversations/{world.conversations['bob']}/assign",
            json={"manager_id": world.ids["ann"]},
            headers=world.auth["head"],
        )
        assert moved.status == 200
        bobs = world.conversations["bob"]
        seen += await _events_until(socket, "conversation.reassigned", "conversation_id", bobs)
    # Until the head gave it to her, nothing of Bob's conversation reached Ann.
    assert [e for e in seen if e.get("conversation_id") == bobs] == [
        {"event": "conversation.reassigned", **_ids_of(seen[-1])}
    ]
    assert all(set(e) <= {"event", *_IDS} for e in seen)  # ids only, never text


def _ids_of(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if k in _IDS}


_IDS = {"conversation_id", "contact_id", "deal_id", "task_id", "message_id"}


async def test_live_refuses_another_origin_and_strangers(world: World) -> None:
    client = world.client
    stranger = await client.get("/api/v1/live")
    assert stranger.status == 401
    await _login(client, "ann")
    forged = await client.get("/api/v1/live", headers={"Origin": "https://evil.example"})
    assert forged.status == 403


async def test_a_reply_by_another_of_the_clients_channels(world: World, db: Database) -> None:
    client = world.client
    integration = world.auth["integration"]
    # Ann's client also writes from Telegram: same phone, so the same contact.
    telegram = {
        **inbound_body(1),
        "channel": "telegram",
        "channel_account": "sales_bot",
        "external_id": "tg-1",
        "sender": {
            "name": "Client 1",
            "identities": [
                {"kind": "phone", "value": "+79160000001"},
                {"kind": "telegram", "value": "5550001"},
            ],
        },
    }
    assert (await client.post("/api/v1/inbound", json=telegram, headers=integration)).ok
    card = await (
        await client.get(f"/api/v1/contacts/{world.contacts['ann']}", headers=world.auth["ann"])
    ).json()
    assert {"channel": "telegram", "channel_account": "sales_bot"} in card["reachable_accounts"]
    csrf = await _login(client, "ann")
    reply = await client.post(
        f"/api/v1/conversations/{world.conversations['ann']}/messages",
        json={"text": "Answering in Telegram", "channel_account": "sales_bot"},
        headers={"X-CSRF-Token": csrf},
    )
    assert reply.status == 202, await reply.text()
    queued = await reply.json()
    assert queued["conversation_id"] != world.conversations["ann"]

    def outbox(session: Session) -> list[tuple[str, Any]]:
        rows = session.execute(
            select(OutboxMessage.topic, OutboxMessage.payload).where(
                OutboxMessage.topic.like("send.%")
            )
        )
        return [(topic, payload) for topic, payload in rows]

    (sent,) = await db.read(outbox)
    assert sent[0] == "send.telegram"
    assert sent[1]["recipients"] == [{"kind": "telegram", "value": "5550001"}]
    nowhere = await client.post(
        f"/api/v1/conversations/{world.conversations['ann']}/messages",
        json={"text": "x", "channel_account": "no-such-bot"},
        headers={"X-CSRF-Token": csrf},
    )
    assert nowhere.status == 400


async def test_attachments_download_inert_and_html_mail_comes_sanitized(
    world: World, db: Database
) -> None:
    client = world.client
    files = client.app[FILES]
    page = b"<p>Price list</p><script>window.__pwned = 1</script><img src=x onerror=alert(1)>"
    html_key = await files.default.put(page, "html")
    svg_key = await files.default.put(b"<svg onload=alert(1)></svg>", "files")
    attachments = [
        {
            "name": "message.html",
            "content_type": "text/html",
            "size": len(page),
            "storage_key": html_key,
        },
        {"name": "прайс.svg", "content_type": "image/svg+xml", "size": 27, "storage_key": svg_key},
        # A right-to-left override that would show as "invoicelmth.exe.png".
        {
            "name": "invoice\u202egnp.exe.html",
            "content_type": "image/png",
            "size": 27,
            "storage_key": svg_key,
        },
    ]
    conversation = world.conversations["ann"]
    await db.write(
        lambda session: session.execute(
            update(Message)
            .where(Message.conversation_id == conversation)
            .values(attachments=attachments)
        )
    )
    timeline = await (
        await client.get(
            f"/api/v1/contacts/{world.contacts['ann']}/timeline", headers=world.auth["ann"]
        )
    ).json()
    (message,) = timeline["items"]
    assert "<script" not in message["html_safe"]
    assert "onerror" not in message["html_safe"]
    assert "Price list" in message["html_safe"]
    svg_url = message["attachments"][1]["url"]
    download = await client.get(svg_url, headers=world.auth["ann"])
    assert download.status == 200
    assert download.headers["Content-Type"] == "application/octet-stream"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert "filename*=UTF-8''%D0%BF" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert await download.read() == b"<svg onload=alert(1)></svg>"
    spoof = await client.get(message["attachments"][2]["url"], headers=world.auth["ann"])
    assert spoof.status == 200
    assert spoof.headers["Content-Disposition"] == (
        "inline; filename=\"invoice_gnp.exe.html\"; filename*=UTF-8''invoice_gnp.exe.html"
    )
    hidden = await client.get(svg_url, headers=world.auth["bob"])
    assert hidden.status == 404


async def test_reading_again_what_was_read_says_nothing(world: World) -> None:
    """A read mark goes out (to the inbox, to the client's widget) only when the marker
    moves: the inbox marks read what it shows, and hears of read marks, so a mark said
    every time fetched and marked again, four times a second, for as long as it was open."""
    client = world.client
    csrf = await _login(client, "ann")
    conversation = world.conversations["ann"]
    async with client.ws_connect("/api/v1/live") as socket:
        assert (await socket.receive_json())["event"] == "hello"
        path = f"/api/v1/conversations/{conversation}/read"
        first = await client.post(path, headers={"X-CSRF-Token": csrf})
        assert first.status == 200
        await _events_until(socket, "conversation.read", "conversation_id", conversation)
        for _ in range(3):
            again = await client.post(path, headers={"X-CSRF-Token": csrf})
            assert again.status == 200
        with pytest.raises(TimeoutError):  # nothing more is said
            await asyncio.wait_for(socket.receive_json(), 1.5)
