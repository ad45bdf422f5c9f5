"""Two hub processes on one PostgreSQL: a visitor on one, the manager on the other.

Replies reach the visitor's socket through the live events (LISTEN/NOTIFY), typing and
read marks through signals (hub/signals.py), whichever process the request went to.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from crm_core.clock import ManualClock
from crm_core.db import Database
from hub.app import create_app
from hub.settings import Settings
from tests.integration.site_chat.conftest import (
    PAGE,
    ClientFactory,
    Hub,
    make_hub,
    next_of,
    say,
    widget_table,
)

pytestmark = pytest.mark.postgres


async def test_a_visitor_on_one_process_hears_a_manager_on_the_other(
    pg_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    db = Database(pg_url)
    try:
        first = await make_hub(pg_url, db, clock, aiohttp_client, tmp_path)

        settings = Settings(
            database_url=pg_url,
            session_cookie_secure=False,
            media_dir=str(tmp_path / "media"),
            channels={"site_chat": widget_table()},
            outbox_poll_seconds=0.05,
        )
        second = Hub(
            await aiohttp_client(create_app(settings, clock=clock)),
            first.manager,
            first.manager_id,
            first.integration,
        )
        socket, _ = await first.visit()
        ack = await say(socket, "c-1", "hello from the site")
        listed = await (
            await second.client.get("/api/v1/conversations", headers=second.manager)
        ).json()
        conversation_id = listed["items"][0]["id"]

        # the head's inbox socket on the second process hears the visitor typing on the first
        login = await second.client.post(
            "/api/v1/session", json={"email": "head@example.test", "password": "head-password"}
        )
        assert login.status == 200
        async with second.client.ws_connect("/api/v1/live") as inbox:
            assert (await inbox.receive_json(timeout=10))["event"] == "hello"
            await socket.send_json({"type": "typing", "on": True})
            while True:
                event = await inbox.receive_json(timeout=10)
                if event["event"] == "conversation.typing":
                    break
            assert event["conversation_id"] == conversation_id

        typing = await second.client.post(
            f"/api/v1/conversations/{conversation_id}/typing", json={}, headers=second.manager
        )
        assert typing.status == 200
        assert (await next_of(socket, "typing"))["on"] is True
        path = f"/api/v1/conversations/{conversation_id}/messages"
        reply = await second.client.post(path, json={"text": "yes?"}, headers=second.manager)
        assert reply.status == 202
        pushed = await next_of(socket, "message")
        while pushed["message"]["from"] != "manager":
            pushed = await next_of(socket, "message")
        assert pushed["message"]["text"] == "yes?"
        read = await second.client.post(
            f"/api/v1/conversations/{conversation_id}/read", json={}, headers=second.manager
        )
        assert read.status == 200
        assert (await next_of(socket, "read"))["up_to"] >= ack["message"]["id"]
        await socket.close()
    finally:
        await db.dispose()


async def test_the_minute_limits_add_up_across_processes_in_redis(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    db = Database(pg_url)
    try:
        limits = {"messages_per_minute": 3, "sessions_per_minute": 2}
        table = widget_table(limits=limits)
        hubs = []
        first = await make_hub(pg_url, db, clock, aiohttp_client, tmp_path, table)
        for _ in range(2):
            settings = Settings(
                database_url=pg_url,
                redis_url=redis_url,
                session_cookie_secure=False,
                media_dir=str(tmp_path / "media"),
                channels={"site_chat": table},
            )
            client = await aiohttp_client(create_app(settings, clock=clock))
            hubs.append(Hub(client, first.manager, first.manager_id, first.integration))
        one, two = hubs
        socket, welcome = await one.visit()
        other, _ = await two.visit(token=welcome["token"])
        assert (await say(socket, "a", "one"))["type"] == "ack"
        assert (await say(other, "b", "two"))["type"] == "ack"
        assert (await say(socket, "c", "three"))["type"] == "ack"
        refused = await say(other, "d", "four: the fourth this minute, on either process")
        assert refused["code"] == "rate_limited"
        await socket.close()
        await other.close()
        # new visitors from one address: the first above, one more, then refused anywhere
        extra, _ = await two.visit()
        await extra.close()
        hello = {"type": "hello", "key": "cloud", "token": None, "page": PAGE}
        assert await one.closed_with(hello) == 4429
    finally:
        await db.dispose()
