"""A hub with one website widget, and a visitor's socket to talk to it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN

Client = TestClient[Any, Any]
ClientFactory = Callable[[web.Application], Awaitable[Client]]
SITE = "https://cloud.example.com"
SECRET = "widget-secret"
PAGE = {
    "url": f"{SITE}/pricing?utm_source=google&utm_campaign=pg-trial&gclid=abc",
    "referrer": "https://www.google.com/",
    "origin": SITE,
}


def user_hash(user_id: str, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def widget_table(**overrides: Any) -> dict[str, Any]:
    widget: dict[str, Any] = {
        "key": "cloud",
        "allowed_origins": [SITE],
        "secret": SECRET,
        "title": "Cloud Example",
        "greeting": {"en": "Hi!", "ru": "Привет!"},
        "prechat": {"name": "optional", "email": "optional", "phone": "off"},
        **overrides,
    }
    return {"widgets": [widget]}


@dataclass
class Hub:
    client: Client
    manager: dict[str, str]  # the Authorization header of a manager who sees all
    manager_id: int
    integration: dict[str, str]  # an integration token's header

    async def visit(
        self,
        token: str | None = None,
        user: dict[str, Any] | None = None,
        page: dict[str, Any] | None = None,
        key: str = "cloud",
        origin: str | None = None,
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        """A visitor's socket after its welcome."""
        headers = {"Origin": origin} if origin else {}
        socket = await self.client.ws_connect("/widget/v1/socket", headers=headers)
        hello = {"type": "hello", "key": key, "token": token, "page": page or PAGE, "user": user}
        await socket.send_json(hello)
        welcome = await socket.receive_json(timeout=10)
        assert welcome["type"] == "welcome", welcome
        return socket, welcome

    async def closed_with(self, hello: dict[str, Any] | str, origin: str | None = None) -> int:
        """The close code the socket gets for this first frame."""
        headers = {"Origin": origin} if origin else {}
        socket = await self.client.ws_connect("/widget/v1/socket", headers=headers)
        if isinstance(hello, str):
            await socket.send_str(hello)
        else:
            await socket.send_json(hello)
        message = await socket.receive(timeout=10)
        assert message.type is aiohttp.WSMsgType.CLOSE, message
        await socket.close()
        return int(message.data)


async def say(
    socket: aiohttp.ClientWebSocketResponse, client_id: str, text: str, **extra: Any
) -> dict[str, Any]:
    """Send a message and read up to its ack or error."""
    await socket.send_json({"type": "message", "id": client_id, "text": text, **extra})
    while True:
        frame = await socket.receive_json(timeout=10)
        if frame["type"] in ("ack", "error") and frame.get("id") == client_id:
            return dict(frame)


async def next_of(socket: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        frame = await socket.receive_json(timeout=10)
        if frame["type"] == kind:
            return dict(frame)


async def make_hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    site_chat: dict[str, Any] | None = None,
    routing_file: str = "",
) -> Hub:
    def people(session: Session) -> tuple[int, str, str]:
        journal = Journal("test", WHEN)
        head = create_manager(
            session,
            journal,
            email="head@example.test",
            name="Anna Head",
            role=Role.HEAD,
            password="head-password",
        )
        token = create_api_token(session, journal, "head", head.id)[1]
        integration = create_api_token(session, journal, "crm sync")[1]
        journal.flush(session)
        return head.id, token, integration

    manager_id, token, integration = await db.write(people)
    settings = Settings(
        database_url=database_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        routing_file=routing_file,
        channels={"site_chat": site_chat or widget_table()},
        outbox_poll_seconds=0.05,
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    return Hub(
        client,
        {"Authorization": f"Bearer {token}"},
        manager_id,
        {"Authorization": f"Bearer {integration}"},
    )


@pytest.fixture
async def hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> Hub:
    return await make_hub(database_url, db, clock, aiohttp_client, tmp_path)
