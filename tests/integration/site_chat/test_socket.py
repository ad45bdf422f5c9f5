"""The widget's socket without a browser: a visit, messages once per client id, replies
live, resuming by token, and the history a visitor may see."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from crm_core.db import Database
from crm_core.models import Conversation, Deal, Message, SiteSession, Touch
from tests.factories import count_rows
from tests.integration.site_chat.conftest import Hub, next_of, say, user_hash


async def test_a_visit_a_message_and_a_reply_live(hub: Hub, db: Database) -> None:
    socket, welcome = await hub.visit()
    assert welcome["messages"] == []
    assert welcome["widget"]["title"] == "Cloud Example"
    assert welcome["widget"]["open"] is True
    assert "secret" not in str(welcome["widget"])
    token = welcome["token"]
    ack = await say(socket, "c-1", "Need a PostgreSQL cluster", contact={"name": "Ivan"})
    assert ack["type"] == "ack", ack
    message = ack["message"]
    assert message["text"] == "Need a PostgreSQL cluster"
    assert message["from"] == "visitor"
    assert message["client_id"] == "c-1"

    # the manager sees it in the inbox and answers; the visitor's socket hears it live
    listed = await hub.client.get("/api/v1/conversations", headers=hub.manager)
    conversations = (await listed.json())["items"]
    assert len(conversations) == 1
    conversation_id = conversations[0]["id"]
    reply = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Hello Ivan, which size?"},
        headers=hub.manager,
    )
    assert reply.status == 202, await reply.text()
    pushed = await next_of(socket, "message")
    while pushed["message"]["from"] != "manager":
        pushed = await next_of(socket, "message")
    assert pushed["message"]["text"] == "Hello Ivan, which size?"
    assert pushed["message"]["author"] == "Anna"
    await socket.close()

    # the session's token brings the same conversation back, with its history
    again, resumed = await hub.visit(token=token)
    assert [m["text"] for m in resumed["messages"]] == [
        "Need a PostgreSQL cluster",
        "Hello Ivan, which size?",
    ]
    assert resumed["visitor"]["name"] == "Ivan"
    await again.close()
    stored = await db.read(lambda s: list(s.scalars(select(SiteSession.token_sha256))))
    assert token not in stored
    assert len(stored[0]) == 64


async def test_the_same_client_id_is_stored_once(hub: Hub, db: Database) -> None:
    socket, welcome = await hub.visit()
    first = await say(socket, "same-id", "hello")
    again = await say(socket, "same-id", "hello")
    assert first["message"]["id"] == again["message"]["id"]
    await socket.close()
    second_tab, _ = await hub.visit(token=welcome["token"])
    third = await say(second_tab, "same-id", "hello")
    assert third["message"]["id"] == first["message"]["id"]
    await second_tab.close()
    assert await count_rows(db, Message) == 1


async def test_two_tabs_hear_each_other_and_share_one_conversation(hub: Hub, db: Database) -> None:
    one, welcome = await hub.visit()
    await say(one, "a", "first")
    two, _ = await hub.visit(token=welcome["token"])
    await say(two, "b", "from the second tab")
    heard = await next_of(one, "message")  # its own message comes back too, first
    while heard["message"]["client_id"] != "b":
        heard = await next_of(one, "message")
    assert heard["message"]["text"] == "from the second tab"
    await one.close()
    await two.close()
    assert await count_rows(db, Conversation) == 1


async def test_the_first_message_carries_where_the_visitor_came_from(
    hub: Hub, db: Database
) -> None:
    socket, _ = await hub.visit()
    await say(socket, "c-1", "hi")
    await socket.close()
    touch = await db.read(lambda s: s.scalars(select(Touch)).one())
    assert touch.channel == "site_chat"
    assert touch.utm_source == "google"
    assert touch.utm_campaign == "pg-trial"
    assert touch.gclid == "abc"
    assert (
        touch.landing_page
        == "https://cloud.example.com/pricing?utm_source=google&utm_campaign=pg-trial&gclid=abc"
    )
    assert touch.referrer == "https://www.google.com/"
    assert await count_rows(db, Deal) == 1


async def test_a_manager_typing_and_reading_reach_the_visitor(hub: Hub) -> None:
    socket, _ = await hub.visit()
    ack = await say(socket, "c-1", "hi")
    listed = await (await hub.client.get("/api/v1/conversations", headers=hub.manager)).json()
    conversation_id = listed["items"][0]["id"]
    typing = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/typing", json={"on": True}, headers=hub.manager
    )
    assert typing.status == 200
    assert (await next_of(socket, "typing"))["on"] is True
    read = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/read", json={}, headers=hub.manager
    )
    assert read.status == 200
    assert (await next_of(socket, "read"))["up_to"] >= ack["message"]["id"]
    await socket.close()


async def test_the_visitor_reads_the_reply(hub: Hub, db: Database) -> None:
    socket, _ = await hub.visit()
    await say(socket, "c-1", "hi")
    listed = await (await hub.client.get("/api/v1/conversations", headers=hub.manager)).json()
    conversation_id = listed["items"][0]["id"]
    await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "yes?"},
        headers=hub.manager,
    )
    pushed = await next_of(socket, "message")
    while pushed["message"]["from"] != "manager":
        pushed = await next_of(socket, "message")
    reply_id = pushed["message"]["id"]
    for _ in range(100):  # the relay marks the reply sent
        status = await db.read(lambda s: s.get(Message, reply_id).delivery_status)  # type: ignore[union-attr]
        if status == "sent":
            break
        await asyncio.sleep(0.05)
    await socket.send_json({"type": "read", "up_to": reply_id})
    await socket.send_json({"type": "ping"})
    await next_of(socket, "pong")
    await socket.close()
    status = await db.read(lambda s: s.get(Message, reply_id).delivery_status)  # type: ignore[union-attr]
    assert status == "read"


async def test_a_tab_open_before_the_first_message_joins_the_chat_it_opens(hub: Hub) -> None:
    one, welcome = await hub.visit()
    two, _ = await hub.visit(token=welcome["token"])  # no chat yet in either tab
    await say(one, "a", "the first message")
    heard = await next_of(two, "message")
    assert heard["message"]["client_id"] == "a"
    listed = await (await hub.client.get("/api/v1/conversations", headers=hub.manager)).json()
    path = f"/api/v1/conversations/{listed['items'][0]['id']}/messages"
    await hub.client.post(path, json={"text": "both tabs see this"}, headers=hub.manager)
    for tab in (one, two):
        pushed = await next_of(tab, "message")
        while pushed["message"]["from"] != "manager":
            pushed = await next_of(tab, "message")
        assert pushed["message"]["text"] == "both tabs see this"
    await one.close()
    await two.close()


async def test_a_verified_chat_is_not_resumed_without_the_user(hub: Hub) -> None:
    user = {"id": "7", "hash": user_hash("7")}
    socket, welcome = await hub.visit(user=user)
    await say(socket, "v-1", "my account's invoice")
    await socket.close()
    logged_out, anonymous = await hub.visit(token=welcome["token"])
    assert anonymous["visitor"]["verified"] is False
    assert anonymous["messages"] == []
    assert anonymous["token"] != welcome["token"]
    await logged_out.close()
