"""Scaled mode: a commit in a web process (no relay of its own) wakes the workers' relays
at once (NOTIFY omnihub_wake, hub/relay_wake.py) instead of waiting for their next poll."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.people import create_api_token
from hub.app import create_app
from hub.keys import EVENTS
from hub.roles import ProcessRole
from hub.settings import Settings
from tests.factories import WHEN, add_managers

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]
ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
POLL = 60.0  # the worker's idle poll: far longer than the test waits


async def test_a_web_commit_is_delivered_by_a_worker_without_waiting_for_its_poll(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    db = Database(pg_url)
    try:
        await add_managers(db, 2)

        def token(session: Session) -> str:
            journal = Journal("test", WHEN)
            plain = create_api_token(session, journal, "crm sync")[1]
            journal.flush(session)
            return plain

        auth = {"Authorization": f"Bearer {await db.write(token)}"}
    finally:
        await db.dispose()
    settings = Settings(database_url=pg_url, outbox_poll_seconds=POLL, routing_poll_seconds=3600)
    worker = await aiohttp_client(create_app(settings, clock=clock, role=ProcessRole.WORKER))
    webapp = await aiohttp_client(create_app(settings, clock=clock, role=ProcessRole.WEB))
    await asyncio.sleep(0.5)  # the worker's first relay pass is over: it now sleeps POLL
    heard = webapp.app[EVENTS].subscribe()

    started = time.monotonic()
    body = {
        "channel": "api",
        "channel_account": "website",
        "external_id": "wake-1",
        "sender": {"name": "Vera", "identities": [{"kind": "phone", "value": "+79035550101"}]},
        "text": "Hello",
    }
    answer = await webapp.post("/api/v1/inbound", json=body, headers=auth)
    assert answer.status == 201, await answer.text()
    message_id = (await answer.json())["message_id"]
    while True:  # the web process's socket bus hears it from the worker's relay
        event = await asyncio.wait_for(heard.get(), timeout=10)
        if event.get("event") == "message.created" and event.get("message_id") == message_id:
            break
    assert time.monotonic() - started < 10 < POLL
    assert worker.app is not webapp.app
