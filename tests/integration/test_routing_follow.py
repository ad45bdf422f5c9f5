"""Several hub processes on one PostgreSQL: a routing stored by one is followed by all."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.routing_store import store_routing
from hub.app import create_app
from hub.keys import INGEST, ROUTING, ROUTING_FOLLOWER
from hub.settings import Settings
from tests.factories import WHEN, add_managers, api_token

pytestmark = pytest.mark.postgres

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]


def _inbound(n: int, text: str) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_account": "website",
        "external_id": f"follow-{n}",
        "sender": {"identities": [{"kind": "phone", "value": f"+7916555000{n}"}]},
        "text": text,
    }


async def _routing_reason(client: Client, auth: dict[str, str], n: int, text: str) -> str:
    response = await client.post("/api/v1/inbound", json=_inbound(n, text), headers=auth)
    assert response.status == 201, await response.text()
    deal_id = (await response.json())["deal_id"]
    deal = await (await client.get(f"/api/v1/deals/{deal_id}", headers=auth)).json()
    return str(deal["routing_reason"])


async def _two_hubs(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory
) -> tuple[Client, Client, dict[str, str]]:
    db = Database(pg_url)
    try:
        auth = {"Authorization": f"Bearer {await api_token(db)}"}
        await add_managers(db, 2)
    finally:
        await db.dispose()
    settings = Settings(database_url=pg_url, routing_poll_seconds=3600)
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    return first, second, auth


def _with_vip_rule(document: dict[str, Any], name: str) -> dict[str, Any]:
    rule = {"name": name, "team": "Sales", "funnel": "conference", "when": {"keywords": ["vip"]}}
    return {**document, "rules": [rule, *document["rules"]]}


async def test_a_routing_put_on_one_hub_is_followed_by_another(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    first, second, auth = await _two_hubs(pg_url, clock, aiohttp_client)
    followers = [t for t in asyncio.all_tasks() if t.get_name() == "routing-follower"]
    assert len(followers) == 2  # each hub polls on its own; here the poll is done by hand
    document = (await (await first.get("/api/v1/routing", headers=auth)).json())["document"]
    assert "'vip'" not in await _routing_reason(second, auth, 1, "I am a VIP client")

    put = await first.put("/api/v1/routing", json=_with_vip_rule(document, "vip"), headers=auth)
    assert put.status == 200
    version = (await put.json())["version"]
    assert "'vip'" in await _routing_reason(first, auth, 2, "VIP here")

    # The second hub's next poll: one look at the newest version id, then the document.
    state = second.app[ROUTING]
    assert await second.app[ROUTING_FOLLOWER].refresh()
    assert state.version == version
    assert "'vip'" in await _routing_reason(second, auth, 3, "VIP there")
    assert second.app[INGEST].automation is state.automation
    shown = await (await second.get("/api/v1/routing", headers=auth)).json()
    assert shown["source"] == "api"
    assert shown["document"]["rules"][0]["name"] == "vip"


async def test_a_stored_routing_that_cannot_be_used_never_replaces_good_rules(
    pg_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first, second, auth = await _two_hubs(pg_url, clock, aiohttp_client)
    follower = second.app[ROUTING_FOLLOWER]
    document = (await (await first.get("/api/v1/routing", headers=auth)).json())["document"]
    put = await first.put("/api/v1/routing", json=_with_vip_rule(document, "vip"), headers=auth)
    assert put.status == 200
    assert await follower.refresh()
    assert not await follower.refresh()  # nothing newer: one cheap look, nothing loaded

    broken = {**document, "rules": [{"name": "lost", "team": "Nobody"}]}

    def store_broken(session: Session) -> int:
        journal = Journal("test", WHEN)
        version = store_routing(session, journal, broken)  # as an older hub might have
        journal.flush(session)
        return version

    db = Database(pg_url)
    try:
        bad = await db.write(store_broken)
    finally:
        await db.dispose()
    with caplog.at_level(logging.ERROR, logger="hub.routing_follow"):
        assert not await follower.refresh()
        assert not await follower.refresh()  # refused once, not parsed again on every poll
    [logged] = [r.getMessage() for r in caplog.records if r.name == "hub.routing_follow"]
    assert f"version {bad} is not valid" in logged
    assert "'Nobody'" in logged
    assert logged.endswith(f"keeping version {bad - 1}")
    assert second.app[ROUTING].version == bad - 1
    assert "'vip'" in await _routing_reason(second, auth, 4, "VIP still")

    put = await first.put("/api/v1/routing", json=_with_vip_rule(document, "vip2"), headers=auth)
    assert await follower.refresh()
    assert second.app[ROUTING].version == (await put.json())["version"]
    assert "'vip2'" in await _routing_reason(second, auth, 5, "VIP again")
