"""A subscriber's endpoint for the outbound webhook tests: a real aiohttp server on a fixed
port that can be taken down (connection refused), made to answer 503, and brought back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from aiohttp import web


class Endpoint:
    """Records what it took: ``(webhook-id, type, data)`` in the order it arrived."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.arrived: list[tuple[str, str, dict[str, Any]]] = []
        self.raw: list[tuple[dict[str, str], bytes]] = []
        self.status = 204  # what it answers; 503 refuses (and records nothing)
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if self.status < 300:
            body = json.loads(raw)
            self.raw.append((dict(request.headers), raw))
            self.arrived.append((request.headers["webhook-id"], body["type"], body["data"]))
        return web.Response(status=self.status)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> Counter[str]:
        return Counter(webhook_id for webhook_id, _, _ in self.arrived)

    def of_type(self, event: str) -> list[tuple[str, str, dict[str, Any]]]:
        return [a for a in self.arrived if a[1] == event]


def in_order_per_contact(arrived: list[tuple[str, str, dict[str, Any]]]) -> bool:
    """Each contact's contact.created came before its deal.created, once each."""
    seen: dict[int, list[str]] = {}
    for _, event, data in arrived:
        seen.setdefault(int(data["contact_id"]), []).append(event)
    return all(events == ["contact.created", "deal.created"] for events in seen.values())


def signed_by(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(part, f"v1,{expected}") for part in headers["webhook-signature"].split()
    )


async def until(condition: Callable[[], Any], within: float = 15.0) -> None:
    """Wait for ``condition()`` (sync, or a coroutine function) to hold; fail after ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"not met within {within}s: {condition}")
        await asyncio.sleep(0.02)
