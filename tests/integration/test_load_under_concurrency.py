"""Capacity and `evenly` hold when many new clients write at once (DESIGN.md rule 8).

32 concurrent ``POST /api/v1/inbound`` of new clients through the HTTP API, on SQLite
(one writer) and on PostgreSQL (concurrent transactions, where read-then-decide races).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import ConversationStatus
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Conversation
from crm_core.timers import TimerRunner
from hub.app import create_app
from hub.settings import Settings
from routing import load_config, route
from tests.factories import add_managers, api_token, inbound, phone
from tests.integration.conftest import ClientFactory

CONCURRENCY = 32


async def _post_new_clients(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    count: int,
) -> list[dict[str, Any]]:
    """``count`` new clients write at once, at most ``CONCURRENCY`` requests in flight."""
    token = await api_token(db, "load test")
    settings = Settings(
        database_url=database_url, session_cookie_secure=False, media_dir=str(tmp_path / "media")
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    headers = {"Authorization": f"Bearer {token}"}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def post(n: int) -> dict[str, Any]:
        body = {
            "channel": "api",
            "channel_account": "website",
            "external_id": f"load-{n}",
            "sender": {
                "name": f"Client {n}",
                "identities": [{"kind": "phone", "value": f"+7916{n:07d}"}],
            },
            "text": f"Question {n}",
        }
        async with gate:
            response = await client.post("/api/v1/inbound", json=body, headers=headers)
            assert response.status == 201, await response.text()
            result: dict[str, Any] = await response.json()
            return result

    return list(await asyncio.gather(*(post(n) for n in range(count))))


async def _open_loads(db: Database) -> Counter[int | None]:
    def work(session: Session) -> Counter[int | None]:
        return Counter(
            session.scalars(
                select(Conversation.assignee_id).where(
                    Conversation.status == ConversationStatus.OPEN
                )
            )
        )

    return await db.read(work)


async def test_no_manager_gets_more_than_capacity(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    ann, bob = await add_managers(db, 2, capacity=3)
    results = await _post_new_clients(database_url, db, clock, aiohttp_client, tmp_path, 40)

    assert len({r["conversation_id"] for r in results}) == 40
    loads = await _open_loads(db)
    assert loads == Counter({ann: 3, bob: 3, None: 34})
    assigned = Counter(r["assignee_id"] for r in results)
    assert assigned == loads


async def test_evenly_splits_concurrent_clients_within_one(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    ann, bob = await add_managers(db, 2, capacity=1000)
    results = await _post_new_clients(database_url, db, clock, aiohttp_client, tmp_path, 200)

    loads = await _open_loads(db)
    assert set(loads) == {ann, bob}
    assert abs(loads[ann] - loads[bob]) <= 1, loads
    assert Counter(r["assignee_id"] for r in results) == loads


async def test_queue_timers_and_new_clients_at_the_opening_keep_capacity(
    db: Database, clock: ManualClock
) -> None:
    """At the team's opening, four timer runners hand out the waiting conversations while
    new clients write: together they still give nobody more than their capacity."""
    ann, bob = await add_managers(db, 2, capacity=3)
    config = load_config(
        {
            "teams": {
                "Sales": {
                    "members": [ann, bob],
                    "hours": {"timezone": "Europe/Moscow", "weekly": {"mon": ["09:00-18:00"]}},
                }
            },
            "rules": [{"name": "default", "team": "Sales"}],
        }
    )
    service = IngestService(db, clock, IngestPolicy(), router=partial(route, config=config))
    clock.set(clock.now().replace(hour=4))  # Monday 07:00 in Moscow: closed
    waiting = await asyncio.gather(
        *(
            service.ingest(
                replace(inbound(phone(f"+7 916 100 00 {n:02d}")), occurred_at=clock.now())
            )
            for n in range(12)
        )
    )
    assert {r.assignee_id for r in waiting} == {None}

    clock.advance(timedelta(hours=3))  # 10:00: open
    runners = [TimerRunner(db, clock, lambda: config) for _ in range(4)]
    timers = asyncio.gather(*(runner.run_once() for runner in runners))
    new_clients = asyncio.gather(
        *(
            service.ingest(
                replace(inbound(phone(f"+7 916 200 00 {n:02d}")), occurred_at=clock.now())
            )
            for n in range(12)
        )
    )
    fired, _ = await asyncio.gather(timers, new_clients)
    assert sum(fired) >= 12
    loads = await _open_loads(db)
    assert loads == Counter({ann: 3, bob: 3, None: 18})
