"""Two hub processes on one PostgreSQL: an event committed through either reaches the
inbox sockets of both (LISTEN/NOTIFY, hub/broadcast.py), once each, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import Contact, Conversation, Deal, Task
from crm_core.outbox import OutboxItem
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.broadcast import MAX_PAYLOAD, announcement
from hub.keys import EVENTS
from hub.settings import Settings
from tests.factories import WHEN

pytestmark = pytest.mark.postgres

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
Socket = aiohttp.ClientWebSocketResponse


async def _people(db: Database) -> tuple[dict[str, int], dict[str, str]]:
    def work(session: Session) -> tuple[dict[str, int], dict[str, str]]:
        journal = Journal("test", WHEN)
        ids, tokens = {}, {}
        for name, role, team in (("ann", Role.MANAGER, "Sales"), ("bob", Role.MANAGER, "Sales")):
            manager = create_manager(
                session,
                journal,
                email=f"{name}@example.test",
                name=name.title(),
                role=role,
                team=team,
                password=f"{name}-password",
            )
            ids[name] = manager.id
            tokens[name] = create_api_token(session, journal, name, manager.id)[1]
        tokens["integration"] = create_api_token(session, journal, "crm sync")[1]
        journal.flush(session)
        return ids, tokens

    return await db.write(work)


def _inbound(client_no: int, n: int) -> dict[str, Any]:
    """A message from client ``client_no`` by Telegram (a channel a reply can take)."""
    return {
        "channel": "telegram",
        "channel_account": "sales_bot",
        "external_id": f"across-{client_no}-{n}",
        "sender": {
            "identities": [
                {"kind": "phone", "value": f"+791650000{client_no:02d}"},
                {"kind": "telegram", "value": f"77700{client_no:02d}"},
            ]
        },
        "text": f"message {n}",
    }


async def _give(db: Database, made: dict[str, Any], manager_id: int) -> None:
    """Put a client in one manager's hands, whatever the default routing did."""

    def work(session: Session) -> None:
        for model, column, key in (
            (Conversation, Conversation.assignee_id, "conversation_id"),
            (Deal, Deal.owner_id, "deal_id"),
            (Task, Task.assignee_id, "task_id"),
            (Contact, Contact.owner_id, "contact_id"),
        ):
            session.execute(
                update(model).where(model.id == made[key]).values({column.key: manager_id})
            )

    await db.write(work)


async def _login(client: Client, who: str) -> str:
    response = await client.post(
        "/api/v1/session", json={"email": f"{who}@example.test", "password": f"{who}-password"}
    )
    assert response.status == 200
    return str((await response.json())["csrf_token"])


async def _until(socket: Socket, message_id: int) -> list[dict[str, Any]]:
    """What the socket says up to and including the ``message.created`` of ``message_id``."""
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(15):
        while True:
            event = await socket.receive_json()
            seen.append(event)
            if event.get("event") == "message.created" and event.get("message_id") == message_id:
                return seen


class _Scene:
    def __init__(self, first: Client, second: Client, auth: dict[str, dict[str, str]]) -> None:
        self.first, self.second, self.auth = first, second, auth

    async def inbound(self, client_no: int, n: int) -> dict[str, Any]:
        response = await self.second.post(
            "/api/v1/inbound", json=_inbound(client_no, n), headers=self.auth["integration"]
        )
        assert response.status in (200, 201), await response.text()
        return dict(await response.json())


async def _scene(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory, tmp_path: Path
) -> tuple[_Scene, Database, dict[str, int]]:
    db = Database(pg_url)
    ids, tokens = await _people(db)
    settings = Settings(
        database_url=pg_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        outbox_poll_seconds=0.02,  # both relays look all the time: they share the rows
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    return _Scene(first, second, auth), db, ids


async def test_events_committed_through_one_hub_reach_the_sockets_of_both(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    scene, db, ids = await _scene(pg_url, clock, aiohttp_client, tmp_path)
    try:
        ann = await scene.inbound(1, 0)
        bob = await scene.inbound(2, 0)
        await _give(db, ann, ids["ann"])
        await _give(db, bob, ids["bob"])
        await _login(scene.first, "ann")
        csrf_on_second = await _login(scene.second, "ann")
        async with (
            scene.first.ws_connect("/api/v1/live") as far,
            scene.second.ws_connect("/api/v1/live") as near,
        ):
            for socket in (far, near):
                assert (await socket.receive_json())["event"] == "hello"
            sent = []
            for n in range(1, 21):
                sent.append((await scene.inbound(1, n))["message_id"])
                await scene.inbound(2, n)  # Bob's: none of it may reach Ann's sockets
            assert len(set(sent)) == 20
            reply = await scene.second.post(
                f"/api/v1/conversations/{ann['conversation_id']}/messages",
                json={"text": "On it"},
                headers={"X-CSRF-Token": csrf_on_second},
            )
            assert reply.status == 202, await reply.text()
            sent.append((await reply.json())["message_id"])
            sentinel = (await scene.inbound(1, 99))["message_id"]
            seen = {name: await _until(s, sentinel) for name, s in (("far", far), ("near", near))}
        for name, events in seen.items():
            created = [
                e["message_id"]
                for e in events
                if e["event"] == "message.created"
                and e.get("conversation_id") == ann["conversation_id"]
            ]
            assert created == [*sent, sentinel], name  # each once, in order
            assert not [e for e in events if e.get("conversation_id") == bob["conversation_id"]]
            assert not [e for e in events if e.get("contact_id") == bob["contact_id"]]
    finally:
        await db.dispose()


async def test_a_listener_hears_the_relays_of_every_process_once(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    """The bus of each process gets every event once, whichever relay delivered it."""
    scene, db, _ids = await _scene(pg_url, clock, aiohttp_client, tmp_path)
    try:
        queues = [scene.first.app[EVENTS].subscribe(), scene.second.app[EVENTS].subscribe()]
        made = [await scene.inbound(3, n) for n in range(5)]
        wanted = [m["message_id"] for m in made]
        for queue in queues:
            got: list[int] = []
            async with asyncio.timeout(15):
                while len(got) < len(wanted):
                    event = await queue.get()
                    if event.get("event") == "message.created":
                        got.append(int(event["message_id"]))
            assert got == wanted
            await asyncio.sleep(0.3)
            assert not [e for e in _drained(queue) if e.get("event") == "message.created"]
    finally:
        await db.dispose()


def _drained(queue: asyncio.Queue[Any]) -> list[dict[str, Any]]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


def test_an_announcement_carries_ids_and_stays_under_the_notify_limit() -> None:
    texts = [{"event": "message.created", "message_id": 7, "text": "secret", "conversation_id": 3}]
    small = announcement(
        OutboxItem(11, "events", "k", {"events": [{"key": "a", "payload": p} for p in texts]}, 1)
    )
    assert small == (
        '{"o":11,"e":[{"event":"message.created","message_id":7,"conversation_id":3}]}'
    )
    many = {"events": [{"key": str(n), "payload": {**texts[0], "n": n}} for n in range(2000)]}
    big = announcement(OutboxItem(12, "events", "k", many, 1))
    assert big == '{"o": 12}'
    assert len(big) < MAX_PAYLOAD
