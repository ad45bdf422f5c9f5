"""Meta leadgen batches against a Graph API stand-in: each change stands alone.

A lead the Graph API refuses is parked (with its leadgen id, the reason and the time) and
the good leads of the same notification are stored and answered 200; a refusal that can
heal is tried again in the background, a bounded number of times; an admin sees them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import AuditEntry, ContactIdentity, Deal, ParkedItem
from hub.app import create_app
from hub.hooks import HOOKS, META_LEADS
from hub.settings import Settings
from tests.factories import add_managers, api_token, count_rows
from tests.integration.webhooks.test_inbound import APP_SECRET, META_LEAD

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
GOOD = "444444444444"


@dataclass
class Graph:
    """Answers per leadgen id: a status (with the Graph API's error document) or the lead."""

    url: str = ""
    answers: dict[str, int] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    def lead(self, leadgen_id: str) -> dict[str, Any]:
        email = "joe@example.com" if leadgen_id == GOOD else f"lead{leadgen_id}@example.com"
        fields = [
            {"name": "full_name", "values": [f"Lead {leadgen_id}"]},
            {"name": "email", "values": [email]},
        ]
        return {**META_LEAD, "id": leadgen_id, "field_data": fields}


@pytest.fixture
async def graph() -> AsyncIterator[Graph]:
    state = Graph()

    async def lead(request: web.Request) -> web.Response:
        leadgen_id = request.match_info["id"]
        state.asked.append(leadgen_id)
        status = state.answers.get(leadgen_id, 200)
        if status != 200:
            error = {"message": "Unsupported get request", "type": "GraphMethodException"}
            return web.json_response({"error": {**error, "code": 100}}, status=status)
        return web.json_response(state.lead(leadgen_id))

    app = web.Application()
    app.router.add_get("/v21.0/{id}", lead)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    state.url = str(server.make_url("/v21.0"))
    try:
        yield state
    finally:
        await server.close()


async def _hub(
    database_url: str, clock: ManualClock, graph: Graph, factory: ClientFactory, attempts: int = 3
) -> Client:
    source = {
        "key": "meta",
        "kind": "meta",
        "app_secret": APP_SECRET,
        "verify_token": "meta-verify",
        "access_token": "graph-token",
        "graph_base": graph.url,
    }
    settings = Settings(
        database_url=database_url,
        channels={"webhooks": {"sources": [source], "lead_retry_attempts": attempts}},
    )
    return await factory(create_app(settings, clock=clock))


@pytest.fixture
async def hub(
    database_url: str, db: Database, clock: ManualClock, graph: Graph, aiohttp_client: ClientFactory
) -> Client:
    clock.set(NOW)
    await add_managers(db, 1)
    return await _hub(database_url, clock, graph, aiohttp_client)


async def _notify(hub: Client, *leadgen_ids: str) -> Any:
    changes = [
        {"field": "leadgen", "value": {"leadgen_id": i, "form_id": "77", "page_id": "1"}}
        for i in leadgen_ids
    ]
    body = json.dumps({"object": "page", "entry": [{"id": "1", "changes": changes}]}).encode()
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sig}
    return await hub.post("/hooks/meta/meta", data=body, headers=headers)


async def _parked(hub: Client, db: Database, **query: str) -> list[dict[str, Any]]:
    admin = {"Authorization": f"Bearer {await api_token(db, 'admin')}"}
    response = await hub.get("/api/v1/parked", params=query, headers=admin)
    assert response.status == 200, await response.text()
    page = await response.json()
    assert page["next_after"] is None
    return list(page["items"])


async def _emails(db: Database) -> set[str]:
    def work(session: Session) -> set[str]:
        return set(session.scalars(select(ContactIdentity.value)).all())

    return await db.read(work)


async def test_a_lead_the_graph_api_refuses_does_not_block_its_batch(
    hub: Client,
    db: Database,
    graph: Graph,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    graph.answers["100100"] = 400  # Meta's "no such object": it will not heal
    caplog.set_level(logging.WARNING)
    response = await _notify(hub, "100100", GOOD)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert [lead["duplicate"] for lead in answer["leads"]] == [False]
    assert answer["parked"] == [
        {
            "leadgen_id": "100100",
            "reason": "the Graph API answered 400: Unsupported get request (code 100)",
            "retrying": False,
        }
    ]
    assert await _emails(db) == {"joe@example.com"}
    assert await count_rows(db, Deal) == 1
    [item] = await _parked(hub, db)
    assert {k: item[k] for k in ("channel", "account", "item_key", "status", "attempts")} == {
        "channel": "meta",
        "account": "meta",
        "item_key": "100100",
        "status": "parked",
        "attempts": 1,
    }
    assert "400" in item["reason"]
    assert item["detail"] == {"form_id": "77", "page_id": "1"}
    assert datetime.fromisoformat(item["first_failed_at"]) == NOW
    assert item["next_attempt_at"] is None
    assert any("100100" in r.getMessage() for r in caplog.records if r.name == "hub.meta_leads")

    # Meta resending the notification stores nothing twice; a 4xx is never retried alone.
    again = await _notify(hub, "100100", GOOD)
    assert (await again.json())["leads"][0]["duplicate"] is True
    asked = len(graph.asked)
    clock.advance(timedelta(days=1))
    assert await _retry(hub) == 0
    assert len(graph.asked) == asked
    assert await count_rows(db, Deal) == 1


async def test_a_lead_without_a_phone_or_an_email_is_parked_not_refused(
    hub: Client, db: Database, graph: Graph
) -> None:
    original = graph.lead

    def nameless(leadgen_id: str) -> dict[str, Any]:
        lead = original(leadgen_id)
        if leadgen_id == "200200":
            lead["field_data"] = [{"name": "full_name", "values": ["No Contact"]}]
        return lead

    graph.lead = nameless  # type: ignore[method-assign]
    response = await _notify(hub, GOOD, "200200")
    assert response.status == 200
    assert [p["leadgen_id"] for p in (await response.json())["parked"]] == ["200200"]
    [item] = await _parked(hub, db, status="parked")
    assert item["reason"] == "the lead has neither a phone nor an email"
    assert await count_rows(db, Deal) == 1


async def test_a_lead_the_graph_api_cannot_give_now_is_fetched_again_later(
    hub: Client, db: Database, graph: Graph, clock: ManualClock
) -> None:
    graph.answers["300300"] = 503
    response = await _notify(hub, "300300", GOOD)
    assert response.status == 200
    assert (await response.json())["parked"][0]["retrying"] is True
    assert await _emails(db) == {"joe@example.com"}
    [item] = await _parked(hub, db, channel="meta", status="retrying")
    assert item["attempts"] == 1
    assert datetime.fromisoformat(item["next_attempt_at"]) == NOW + timedelta(minutes=1)

    assert await _retry(hub) == 0  # not due yet: nothing asked
    assert graph.asked.count("300300") == 1
    clock.advance(timedelta(minutes=1))
    assert await _retry(hub) == 0  # still 503: the next try in 2 minutes
    [item] = await _parked(hub, db)
    assert (item["attempts"], item["status"]) == (2, "retrying")
    assert datetime.fromisoformat(item["next_attempt_at"]) == clock.now() + timedelta(minutes=2)

    del graph.answers["300300"]  # the Graph API is back
    clock.advance(timedelta(minutes=2))
    assert await _retry(hub) == 1
    assert await _emails(db) == {"joe@example.com", "lead300300@example.com"}
    assert await _parked(hub, db) == []
    assert await count_rows(db, Deal) == 2


async def test_healable_failures_are_parked_after_the_bound_and_an_admin_may_retry(
    hub: Client, db: Database, graph: Graph, clock: ManualClock
) -> None:
    graph.answers["400400"] = 500
    assert (await _notify(hub, "400400")).status == 200
    for _ in range(2):  # lead_retry_attempts = 3: the first failure, then two retries
        clock.advance(timedelta(hours=1))
        assert await _retry(hub) == 0
    [item] = await _parked(hub, db)
    assert (item["status"], item["attempts"], item["next_attempt_at"]) == ("parked", 3, None)
    clock.advance(timedelta(days=1))
    asked = len(graph.asked)
    assert await _retry(hub) == 0
    assert len(graph.asked) == asked  # given up: not asked again

    manager = {"Authorization": f"Bearer {await api_token(db, 'm', manager_id=1)}"}
    assert (await hub.get("/api/v1/parked", headers=manager)).status == 403
    path = f"/api/v1/parked/{item['id']}/retry"
    assert (await hub.post(path, headers=manager)).status == 403
    admin = {"Authorization": f"Bearer {await api_token(db, 'admin')}"}
    assert (await hub.post("/api/v1/parked/999/retry", headers=admin)).status == 404
    retried = await hub.post(path, headers=admin)
    assert retried.status == 200
    assert {k: (await retried.json())[k] for k in ("status", "attempts")} == {
        "status": "retrying",
        "attempts": 0,
    }
    del graph.answers["400400"]
    assert await _retry(hub) == 1
    assert await count_rows(db, ParkedItem) == 0
    assert "lead400400@example.com" in await _emails(db)


async def _retry(hub: Client) -> int:
    app = hub.app
    assert app is not None
    stored: int = await app[META_LEADS].retry_due(app[HOOKS].sources)
    return stored


async def test_an_admin_may_drop_a_parked_lead_for_good(
    hub: Client, db: Database, graph: Graph, clock: ManualClock
) -> None:
    graph.answers["404404"] = 400  # cannot heal: parked at once
    assert (await _notify(hub, "404404")).status == 200
    [item] = await _parked(hub, db)
    path = f"/api/v1/parked/{item['id']}"
    manager = {"Authorization": f"Bearer {await api_token(db, 'm', manager_id=1)}"}
    assert (await hub.delete(path, headers=manager)).status == 403
    admin = {"Authorization": f"Bearer {await api_token(db, 'admin')}"}
    assert (await hub.delete(path, headers=admin)).status == 204
    assert await count_rows(db, ParkedItem) == 0
    assert (await hub.delete(path, headers=admin)).status == 404  # gone already
    dropped = await count_rows(db, AuditEntry, AuditEntry.action == "parked_item.dropped")
    assert dropped == 1
    clock.advance(timedelta(days=1))
    asked = len(graph.asked)
    assert await _retry(hub) == 0
    assert len(graph.asked) == asked  # never asked again
