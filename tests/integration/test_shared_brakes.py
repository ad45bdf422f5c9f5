"""Two hub processes on one PostgreSQL and one Redis: the login brake counts the failures
of both, and a token revoked through one is refused by the other at once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

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
from hub.keys import SETTINGS
from hub.settings import Settings
from tests.factories import WHEN

pytestmark = pytest.mark.postgres

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]


async def _people(db: Database) -> dict[str, Any]:
    def work(session: Session) -> dict[str, Any]:
        journal = Journal("test", WHEN)
        made: dict[str, Any] = {}
        for name, role in (("ann", Role.MANAGER), ("admin", Role.ADMIN)):
            manager = create_manager(
                session,
                journal,
                email=f"{name}@example.test",
                name=name.title(),
                role=role,
                team="Sales" if role is Role.MANAGER else None,
                password=f"{name}-password",
            )
            made[name] = manager.id
            token = create_api_token(session, journal, name, manager.id)[1]
            made[f"{name}_auth"] = {"Authorization": f"Bearer {token}"}
        journal.flush(session)
        return made

    return await db.write(work)


async def _two_hubs(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> tuple[Client, Client, dict[str, Any]]:
    db = Database(pg_url)
    try:
        people = await _people(db)
    finally:
        await db.dispose()
    settings = Settings(
        database_url=pg_url,
        redis_url=redis_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        token_cache_seconds=3600,  # only a shared revocation can end a cached token
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    return first, second, people


async def _login(client: Client, password: str) -> int:
    response = await client.post(
        "/api/v1/session", json={"email": "ann@example.test", "password": password}
    )
    return response.status


async def test_failed_logins_on_both_hubs_add_up_to_one_brake(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    first, second, _people = await _two_hubs(pg_url, redis_url, clock, aiohttp_client, tmp_path)
    limit = first.app[SETTINGS].login_attempts
    statuses = [await _login((first, second)[n % 2], "wrong") for n in range(limit)]
    assert statuses == [401] * limit
    for hub in (first, second):
        braked = await hub.post(
            "/api/v1/session", json={"email": "ann@example.test", "password": "ann-password"}
        )
        assert braked.status == 429  # whatever the password, on either hub
        assert 1 <= int(braked.headers["Retry-After"]) <= 15 * 60
        assert (await braked.json())["error"] == "too_many_attempts"


async def test_one_hub_alone_brakes_at_the_same_count(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    first, second, _people = await _two_hubs(pg_url, redis_url, clock, aiohttp_client, tmp_path)
    assert [await _login(first, "wrong") for _ in range(5)] == [401] * 5
    assert await _login(first, "ann-password") == 429
    assert await _login(second, "ann-password") == 429


async def test_a_good_login_clears_the_count_on_every_hub(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    first, second, _people = await _two_hubs(pg_url, redis_url, clock, aiohttp_client, tmp_path)
    assert [await _login(second, "wrong") for _ in range(4)] == [401] * 4
    assert await _login(first, "ann-password") == 200
    assert [await _login(second, "wrong") for _ in range(4)] == [401] * 4  # counted anew


async def test_a_manager_deactivated_on_one_hub_is_refused_by_the_other_at_once(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    first, second, people = await _two_hubs(pg_url, redis_url, clock, aiohttp_client, tmp_path)
    ann = people["ann_auth"]
    assert (await second.get("/api/v1/me", headers=ann)).status == 200  # now cached there
    off = await first.patch(
        f"/api/v1/managers/{people['ann']}", json={"active": False}, headers=people["admin_auth"]
    )
    assert off.status == 200, await off.text()
    assert (await second.get("/api/v1/me", headers=ann)).status == 401
    assert (await first.get("/api/v1/me", headers=ann)).status == 401
    # Others' cached tokens are read again, and still work.
    assert (await second.get("/api/v1/me", headers=people["admin_auth"])).status == 200


async def test_a_password_changed_on_one_hub_revokes_the_tokens_on_the_other(
    pg_url: str,
    redis_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    first, second, people = await _two_hubs(pg_url, redis_url, clock, aiohttp_client, tmp_path)
    ann = people["ann_auth"]
    assert (await second.get("/api/v1/me", headers=ann)).status == 200
    changed = await first.patch(
        "/api/v1/me",
        json={"password": "a-new-long-password", "current_password": "ann-password"},
        headers=ann,
    )
    assert changed.status == 200, await changed.text()
    assert (await second.get("/api/v1/me", headers=ann)).status == 401


async def test_without_redis_a_cached_token_outlives_a_revocation_elsewhere(
    pg_url: str, clock: ManualClock, aiohttp_client: ClientFactory, tmp_path: Path
) -> None:
    """What ``redis_url`` adds: without it, each process keeps its cache for its time."""
    db = Database(pg_url)
    try:
        people = await _people(db)
    finally:
        await db.dispose()
    settings = Settings(
        database_url=pg_url, media_dir=str(tmp_path / "media"), token_cache_seconds=3600
    )
    first = await aiohttp_client(create_app(settings, clock=clock))
    second = await aiohttp_client(create_app(settings, clock=clock))
    ann = people["ann_auth"]
    assert (await second.get("/api/v1/me", headers=ann)).status == 200
    off = await first.patch(
        f"/api/v1/managers/{people['ann']}", json={"active": False}, headers=people["admin_auth"]
    )
    assert off.status == 200
    assert (await first.get("/api/v1/me", headers=ann)).status == 401
    assert (await second.get("/api/v1/me", headers=ann)).status == 200  # until its cache ends
