"""The inbox's shared scene: three clients (Ann's, Bob's and one nobody has taken), two
managers of the Sales team, a head of sales, an admin and an integration token."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.settings import Settings
from hub.shared_state import key_prefix
from tests.factories import WHEN

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]


@dataclass
class World:
    client: Client
    auth: dict[str, dict[str, str]]  # role name -> Authorization header
    ids: dict[str, int]  # manager ids
    conversations: dict[str, int]  # whose -> conversation id
    contacts: dict[str, int]
    deals: dict[str, int]
    tasks: dict[str, int]


async def _people(db: Database) -> tuple[dict[str, int], dict[str, str]]:
    def work(session: Session) -> tuple[dict[str, int], dict[str, str]]:
        journal = Journal("test", WHEN)
        people = {
            "ann": (Role.MANAGER, "Sales"),
            "bob": (Role.MANAGER, "Sales"),
            "head": (Role.HEAD, None),
            "admin": (Role.ADMIN, None),
        }
        ids, tokens = {}, {}
        for name, (role, team) in people.items():
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


def inbound_body(n: int) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_account": "website",
        "external_id": f"lead-{n}",
        "sender": {
            "name": f"Client {n}",
            "identities": [{"kind": "phone", "value": f"+7916000000{n}"}],
        },
        "text": f"Question {n}",
    }


@pytest.fixture
async def world(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> World:
    ids, tokens = await _people(db)
    settings = Settings(
        database_url=database_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        products={"pg-cluster": "Managed PostgreSQL", "kafka": "Managed Kafka"},
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}
    made = {}
    for n, whose in enumerate(("ann", "bob", "nobody"), start=1):
        response = await client.post(
            "/api/v1/inbound", json=inbound_body(n), headers=auth["integration"]
        )
        assert response.status == 201, await response.text()
        made[whose] = await response.json()

    def assign(session: Session) -> None:
        # Put each client in a known manager's hands, whatever the default routing did.
        for whose, result in made.items():
            owner = ids.get(whose)
            session.execute(
                update(Conversation)
                .where(Conversation.id == result["conversation_id"])
                .values(assignee_id=owner)
            )
            session.execute(update(Deal).where(Deal.id == result["deal_id"]).values(owner_id=owner))
            session.execute(
                update(Task).where(Task.id == result["task_id"]).values(assignee_id=owner)
            )
            session.execute(
                update(Contact).where(Contact.id == result["contact_id"]).values(owner_id=owner)
            )

    await db.write(assign)
    return World(
        client,
        auth,
        ids,
        {w: r["conversation_id"] for w, r in made.items()},
        {w: r["contact_id"] for w, r in made.items()},
        {w: r["deal_id"] for w, r in made.items()},
        {w: r["task_id"] for w, r in made.items()},
    )


REDIS_URL = os.environ.get("OMNIHUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture
async def redis_url(pg_url: str) -> AsyncIterator[str]:
    """The shared Redis; afterwards only this test's keys (its database's prefix) go."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError

    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        await redis.aclose()
        if IN_CI:
            pytest.fail(f"Redis is needed in CI and is not reachable: {exc}")
        pytest.skip(f"Redis not reachable at {REDIS_URL} ({exc}); install redis-server")
    prefix = key_prefix(pg_url)  # unique to this test: its database's name is
    try:
        yield REDIS_URL
    finally:
        keys = [key async for key in redis.scan_iter(match=prefix + "*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
