"""The first run on SQLite and PostgreSQL: a hub without an admin logs a one-time setup
link; its token creates the first admin once, within its time, and logs them in."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import Manager
from crm_core.people import create_manager
from hub.app import create_app
from hub.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
LINK = re.compile(r"open (\S+)/setup#(\S+) to create the first one")
PASSWORD = "a long enough secret"


def _form(token: str, email: str = "admin@example.test") -> dict[str, str]:
    return {"token": token, "name": "Админ", "email": email, "password": PASSWORD}


async def _start(
    aiohttp_client: ClientFactory,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    clock: ManualClock,
) -> tuple[Client, str | None]:
    """A hub on the database; the setup token its start logged (None: no link)."""
    caplog.clear()
    settings = Settings(
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        setup_link_minutes=30,
        session_cookie_secure=False,  # the test client keeps no Secure cookie over http
    )
    with caplog.at_level(logging.WARNING, logger="hub.first_run"):
        client = await aiohttp_client(create_app(settings, clock=clock))
    found = [LINK.search(r.getMessage()) for r in caplog.records if r.name == "hub.first_run"]
    tokens = [m.group(2) for m in found if m]
    assert len(tokens) <= 1
    return client, (tokens[0] if tokens else None)


async def _admins(db: Database) -> int:
    counted = select(func.count()).select_from(Manager).where(Manager.role == Role.ADMIN.value)

    def count(session: Session) -> int:
        return int(session.scalar(counted) or 0)

    return await db.read(count)


async def test_the_link_creates_the_admin_once_and_logs_them_in(
    database_url: str,
    db: Database,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = await _start(aiohttp_client, database_url, tmp_path, caplog, ManualClock())
    assert token is not None
    assert "http://127.0.0.1:8080/setup#" in caplog.text
    wrong = await client.post("/api/v1/setup", json=_form(token[:-2] + "xx"))
    assert wrong.status == 403
    assert (await wrong.json())["error"] == "setup_link"
    created = await client.post("/api/v1/setup", json=_form(token))
    assert created.status == 201, await created.text()
    me = await created.json()
    assert me["manager"]["role"] == "admin"
    assert me["manager"]["email"] == "admin@example.test"
    assert me["csrf_token"]
    # logged in: the session cookie works
    assert (await client.get("/api/v1/me")).status == 200
    # once: with an admin the link is done; and the spent token is no good either
    again = await client.post("/api/v1/setup", json=_form(token, "other@example.test"))
    assert again.status == 409
    await db.write(lambda s: s.execute(update(Manager).values(active=False)))
    spent = await client.post("/api/v1/setup", json=_form(token, "other@example.test"))
    assert spent.status == 403
    assert await _admins(db) == 1
    # the password works at the login too
    await db.write(lambda s: s.execute(update(Manager).values(active=True)))
    login = await client.post(
        "/api/v1/session", json={"email": "admin@example.test", "password": PASSWORD}
    )
    assert login.status == 200


async def test_the_link_expires_and_a_restart_makes_a_new_one(
    database_url: str,
    db: Database,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock()
    client, token = await _start(aiohttp_client, database_url, tmp_path, caplog, clock)
    assert token is not None
    clock.advance(timedelta(minutes=31))
    late = await client.post("/api/v1/setup", json=_form(token))
    assert late.status == 403
    _again, fresh = await _start(aiohttp_client, database_url, tmp_path, caplog, clock)
    assert fresh is not None
    assert fresh != token
    assert (await client.post("/api/v1/setup", json=_form(token))).status == 403  # the old
    assert (await client.post("/api/v1/setup", json=_form(fresh))).status == 201
    assert await _admins(db) == 1


async def test_two_at_once_make_one_admin(
    database_url: str,
    db: Database,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = await _start(aiohttp_client, database_url, tmp_path, caplog, ManualClock())
    assert token is not None
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/setup", json=_form(token, f"admin{n}@example.test"))
            for n in range(4)
        )
    )
    assert sorted(a.status for a in answers)[0] == 201
    assert [a.status for a in answers].count(201) == 1
    assert await _admins(db) == 1


async def test_no_link_when_an_admin_exists_and_bad_forms_write_nothing(
    database_url: str,
    db: Database,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, token = await _start(aiohttp_client, database_url, tmp_path, caplog, ManualClock())
    assert token is not None
    short = {**_form(token), "password": "short"}
    assert (await client.post("/api/v1/setup", json=short)).status == 400
    foreign = await client.post(
        "/api/v1/setup", json=_form(token), headers={"Origin": "https://evil.example"}
    )
    assert foreign.status == 403
    bad_email = await client.post("/api/v1/setup", json=_form(token, "not an address"))
    assert bad_email.status == 400
    assert await _admins(db) == 0  # and the token still works:
    assert (await client.post("/api/v1/setup", json=_form(token))).status == 201

    await db.write(
        lambda s: create_manager(
            s, Journal("test", ManualClock().now()), email="a2@example.test", name="A2",
            role=Role.ADMIN,
        )
    )  # fmt: skip
    _client, none = await _start(aiohttp_client, database_url, tmp_path, caplog, ManualClock())
    assert none is None
    assert "setup#" not in caplog.text
