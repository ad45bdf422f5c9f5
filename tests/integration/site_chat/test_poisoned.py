"""A visitor's message that ingest keeps failing on (a fault of ours, made here by a
stand-in for the ingest service that raises on one text) closes the socket for the widget
to resend, then is parked after POISON_ATTEMPTS, listed for an admin, and answered with an
``error`` frame (code ``parked``): the widget stops resending, other messages flow."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from crm_core.contracts import InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.ingest import IngestService
from crm_core.models import Message
from hub.site_chat.poisoned import POISON_ATTEMPTS
from tests.factories import count_rows
from tests.integration.site_chat.conftest import Hub, say

POISON = "this text breaks the ingest"


@pytest.fixture
def breaking_ingest(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    healed = {"yes": False}
    real = IngestService.ingest

    async def ingest(self: IngestService, message: InboundMessage, *a: Any, **k: Any) -> Any:
        if message.text == POISON and not healed["yes"]:
            raise RuntimeError("a bug of ours with this message")
        result: IngestResult = await real(self, message, *a, **k)
        return result

    monkeypatch.setattr(IngestService, "ingest", ingest)
    return healed


async def test_a_message_that_keeps_failing_is_parked_and_answered(
    hub: Hub, db: Database, breaking_ingest: dict[str, bool]
) -> None:
    token = None
    for _attempt in range(POISON_ATTEMPTS - 1):
        socket, welcome = await hub.visit(token=token)
        token = welcome["token"]
        await socket.send_json({"type": "message", "id": "bad-1", "text": POISON})
        closed = await socket.receive(timeout=10)
        assert closed.type is aiohttp.WSMsgType.CLOSE
        assert closed.data == 1011  # the widget reconnects and sends it again
    socket, _ = await hub.visit(token=token)
    answer = await say(socket, "bad-1", POISON)
    assert answer["type"] == "error"
    assert answer["code"] == "parked"
    # the socket stays open and other messages flow
    fine = await say(socket, "good-1", "hello")
    assert fine["type"] == "ack"
    listed = await hub.client.get("/api/v1/parked?channel=site_chat", headers=hub.integration)
    assert listed.status == 200, await listed.text()
    items = (await listed.json())["items"]
    assert [i["item_key"] for i in items] == ["say:cloud:bad-1"]
    assert "a bug of ours" in items[0]["reason"]
    health = await (await hub.client.get("/api/v1/channels", headers=hub.manager)).json()
    widget = next(c for c in health["channels"] if c["channel"] == "site_chat")
    assert widget["state"] == "connected"
    assert widget["parked"] == {"count": 1, "url": "/api/v1/parked?channel=site_chat"}
    # healed: the visitor's "send again" goes through and the item is no longer parked
    breaking_ingest["yes"] = True
    again = await say(socket, "bad-1", POISON)
    assert again["type"] == "ack"
    listed = await hub.client.get("/api/v1/parked?channel=site_chat", headers=hub.integration)
    assert (await listed.json())["items"] == []
    await socket.close()
    assert await count_rows(db, Message) == 2
