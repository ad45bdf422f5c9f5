"""Every channel's health is visible (issue 15): ``GET /api/v1/channels``,
``GET /api/v1/hooks/rejected`` and ``GET /healthz?details=1``, through the HTTP API.

The hub runs a Telegram bot whose Bot API is a closed port (its poller fails and says
so), a form hook source, a Meta source with a parked lead, and an outbound webhook
subscription that has been failing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.models import WebhookDelivery
from crm_core.parked import Failure, park
from crm_core.rejected_hooks import Rejection, record
from crm_core.webhook_subscriptions import create_subscription
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN
from tests.integration.conftest import _people

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
BOT_TOKEN = "987654321:SECRET-bot-token-never-shown"
FORM_SECRET = "form-token-never-shown"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _settings(database_url: str, tmp_path: Path, **extra: Any) -> Settings:
    bot = {
        "key": "salesbot",
        "token": BOT_TOKEN,
        "api_base": f"http://127.0.0.1:{_closed_port()}",
        "polling_timeout": 0,
    }
    sources = [
        {"key": "landing", "kind": "form", "secret": FORM_SECRET},
        {
            "key": "fb",
            "kind": "meta",
            "app_secret": "meta-app-secret",
            "verify_token": "v",
            "access_token": "graph-token",
            "graph_base": f"http://127.0.0.1:{_closed_port()}",
        },
    ]
    return Settings(
        database_url=database_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        max_body_bytes=4096,
        channels={
            "telegram": {"media_dir": str(tmp_path / "tg"), "bots": [bot]},
            "webhooks": {"sources": sources},
        },
        **extra,
    )


async def _hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> tuple[Client, dict[str, dict[str, str]]]:
    clock.set(WHEN)
    _ids, tokens = await _people(db)
    client = await aiohttp_client(create_app(_settings(database_url, tmp_path), clock=clock))
    return client, {name: {"Authorization": f"Bearer {t}"} for name, t in tokens.items()}


async def _channels(client: Client, auth: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/channels", headers=auth)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def _one(body: dict[str, Any], channel: str, account: str) -> dict[str, Any]:
    found = [c for c in body["channels"] if c["channel"] == channel and c["account"] == account]
    assert len(found) == 1, body
    one: dict[str, Any] = found[0]
    return one


async def _until(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not in time"
        await asyncio.sleep(0.05)


async def _failing_subscription(db: Database) -> int:
    def work(session: Session) -> int:
        journal = Journal("test", WHEN)
        sub = create_subscription(
            session,
            journal,
            url="https://user:pass@crm.example.test/hook?token=qs-secret",
            events=["message.created"],
            secret="whsec_" + "A" * 40,
        )
        session.flush()
        sub.failure_count = 4
        sub.failing_since = WHEN - timedelta(minutes=20)
        sub.last_failure_at = WHEN - timedelta(minutes=1)
        session.add(
            WebhookDelivery(
                subscription_id=sub.id,
                webhook_id="msg_1",
                event="message.created",
                attempt=4,
                attempted_at=WHEN - timedelta(minutes=1),
                ok=False,
                status_code=503,
                error=None,
                duration_ms=12,
            )
        )
        park(
            session,
            Failure("meta", "fb", "lead-1", "the Graph API answered 400", healable=False),
            WHEN,
            max_attempts=5,
        )
        journal.flush(session)
        return sub.id

    return await db.write(work)


async def test_channels_show_a_failing_bot_a_failing_subscription_and_parked_items(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    client, auth = await _hub(database_url, db, clock, aiohttp_client, tmp_path)
    sub_id = await _failing_subscription(db)

    async def bot_state(wanted: str) -> bool:
        body = await _channels(client, auth["admin"])
        return bool(_one(body, "telegram", "salesbot")["state"] == wanted)

    await _until(lambda: bot_state("retrying"))
    body = await _channels(client, auth["admin"])
    bot = _one(body, "telegram", "salesbot")
    assert bot["kind"] == "polling"
    assert bot["failing_since"] == WHEN.isoformat()
    assert bot["last_error"]["message"]
    assert bot["last_error"]["at"] == WHEN.isoformat()
    assert bot["alert"] is False
    assert bot["backlog"] == 0
    # a bot parks the files it could not download yet (crm_core.late_files)
    assert bot["parked"] == {"count": 0, "url": "/api/v1/parked?channel=telegram"}

    # minutes go by, the poller keeps failing: failing, and an alert past 5 minutes
    clock.advance(timedelta(minutes=6))
    await _until(lambda: bot_state("failing"))
    body = await _channels(client, auth["head"])  # a head of sales sees it too
    bot = _one(body, "telegram", "salesbot")
    assert bot["failing_since"] == WHEN.isoformat()
    assert bot["alert"] is True
    assert body["alert"] is True
    assert bot["failure_streak"] >= 2

    sub = _one(body, "subscription", str(sub_id))
    assert sub["state"] == "failing"
    assert sub["failure_streak"] == 4
    assert sub["failing_since"] == (WHEN - timedelta(minutes=20)).isoformat()
    assert sub["last_error"]["message"] == "HTTP 503"
    assert sub["kind"] == "https://crm.example.test/hook"  # no user, password or query
    assert sub["backlog"] == 0

    meta = _one(body, "webhook", "fb")
    assert meta["state"] == "connected"
    assert meta["kind"] == "meta"
    assert meta["parked"] == {"count": 1, "url": "/api/v1/parked?channel=meta"}
    parked = await client.get(meta["parked"]["url"], headers=auth["admin"])
    assert parked.status == 200
    assert len((await parked.json())["items"]) == 1

    text = json.dumps(body)
    for secret in (BOT_TOKEN, FORM_SECRET, "qs-secret", "pass@", "whsec_"):
        assert secret not in text

    # /healthz stays cheap and open; details name what is down, no more
    plain = await client.get("/healthz")
    assert plain.status == 200
    assert "channels_down" not in await plain.json()
    details = await (await client.get("/healthz?details=1")).json()
    down = {(d["channel"], d["account"]): d["state"] for d in details["channels_down"]}
    assert down[("telegram", "salesbot")] == "failing"
    assert down[("subscription", str(sub_id))] == "failing"
    assert all(set(d) == {"channel", "account", "state"} for d in details["channels_down"])

    # managers may not see it
    forbidden = await client.get("/api/v1/channels", headers=auth["ann"])
    assert forbidden.status == 403
    assert (await forbidden.json())["error"] == "forbidden"


async def test_refused_hook_requests_are_listed_with_a_hash_and_counted(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    client, auth = await _hub(database_url, db, clock, aiohttp_client, tmp_path)
    body = b'{"phone": "+79161234567", "name": "Ann"}'
    bad = {"X-Hook-Token": "wrong", "Content-Type": "application/json"}
    for _ in range(3):  # a sender retrying the same bad request: one row, counted
        refused = await client.post("/hooks/forms/landing", data=body, headers=bad)
        assert refused.status == 401
    good = {"X-Hook-Token": FORM_SECRET, "Content-Type": "application/json"}
    malformed = await client.post("/hooks/forms/landing", data=b"{not json", headers=good)
    assert malformed.status == 400
    too_large = await client.post(
        "/hooks/forms/landing", data=b"x" * 5000, headers={**good, "Content-Length": "5000"}
    )
    assert too_large.status == 413
    unknown = await client.post("/hooks/forms/nobody", data=body, headers=bad)
    assert unknown.status == 404  # not a configured source: nothing recorded
    taken = await client.post("/hooks/forms/landing", data=body, headers=good)
    assert taken.status == 200, await taken.text()

    listed = await client.get("/api/v1/hooks/rejected", headers=auth["admin"])
    assert listed.status == 200
    items = (await listed.json())["items"]
    assert [(i["status"], i["count"]) for i in items] == [(413, 1), (400, 1), (401, 3)]
    signature = items[2]
    assert signature["kind"] == "forms"
    assert signature["source"] == "landing"
    assert signature["body_sha256"] == hashlib.sha256(body).hexdigest()
    assert signature["body_bytes"] == len(body)
    assert signature["error"] == "bad_signature"
    assert items[0]["body_sha256"] == ""
    assert items[0]["body_bytes"] == 5000
    text = json.dumps(items)
    assert FORM_SECRET not in text
    assert "wrong" not in text
    assert "+79161234567" not in text

    channels = await _channels(client, auth["admin"])
    landing = _one(channels, "webhook", "landing")
    assert landing["rejected"] == 5
    assert landing["last_error"]["message"].startswith("413")
    assert landing["last_item_at"] == WHEN.isoformat()

    for who in ("ann", "head"):
        response = await client.get("/api/v1/hooks/rejected", headers=auth[who])
        assert response.status == 403
    filtered = await client.get(
        "/api/v1/hooks/rejected?source=landing&limit=1", headers=auth["admin"]
    )
    page = await filtered.json()
    assert len(page["items"]) == 1
    assert page["next_before"] == page["items"][0]["id"]


async def test_rejections_are_capped_per_source(db: Database) -> None:
    def work(session: Session) -> None:
        for n in range(12):
            rejection = Rejection("forms", "landing", 400, "invalid_json", "bad", f"{n:064x}", 9)
            record(session, rejection, WHEN, cap=5)
        record(session, Rejection("forms", "landing", 400, "x", "y", f"{11:064x}", 9), WHEN, cap=5)

    await db.write(work)

    def rows(session: Session) -> list[tuple[str, int]]:
        from sqlalchemy import select

        from crm_core.models import RejectedHook

        found = session.execute(
            select(RejectedHook.body_sha256, RejectedHook.count).order_by(RejectedHook.id)
        )
        return [(str(h), int(c)) for h, c in found]

    kept = await db.read(rows)
    assert [int(h, 16) for h, _ in kept] == [7, 8, 9, 10, 11]
    assert kept[-1][1] == 2


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_openapi_documents_the_channels(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    client, _auth = await _hub(database_url, db, clock, aiohttp_client, tmp_path)
    doc = await (await client.get("/api/v1/openapi.json")).json()
    assert "/api/v1/channels" in doc["paths"]
    assert "/api/v1/hooks/rejected" in doc["paths"]
    health = doc["components"]["schemas"]["ChannelHealth"]
    assert set(health["required"]) == set(health["properties"])
    assert {"connected", "retrying", "failing", "disabled"} <= set(
        health["properties"]["state"]["enum"]
    )
