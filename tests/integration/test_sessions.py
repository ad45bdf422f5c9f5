"""Logging in to the inbox: argon2 passwords, the session cookie, CSRF, the login brake."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import Manager, ManagerSession
from crm_core.people import create_manager
from hub.app import create_app
from hub.sessions import SESSION_COOKIE
from hub.settings import Settings
from tests.factories import WHEN
from tests.integration.raw_http import LATIN1_BYTES, raw_request

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
LOGIN = {"email": "Anna@Example.test", "password": "correct horse battery"}


async def _anna(db: Database) -> None:
    def work(session: Session) -> None:
        journal = Journal("test", WHEN)
        create_manager(
            session,
            journal,
            email="anna@example.test",
            name="Anna",
            role=Role.MANAGER,
            team="Sales",
            password=LOGIN["password"],
        )
        journal.flush(session)

    await db.write(work)


@pytest.fixture
async def client(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> Client:
    """A hub on plain HTTP (the test client keeps no Secure cookies over http)."""
    await _anna(db)
    settings = Settings(database_url=database_url, login_attempts=3, session_cookie_secure=False)
    return await aiohttp_client(create_app(settings, clock=clock))


async def test_login_sets_a_hardened_cookie_and_keeps_no_secret(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    await _anna(db)
    client = await aiohttp_client(create_app(Settings(database_url=database_url), clock=clock))
    response = await client.post("/api/v1/session", json=LOGIN)
    assert response.status == 200
    body = await response.json()
    assert body["manager"]["name"] == "Anna"
    assert body["manager"]["role"] == "manager"
    assert len(body["csrf_token"]) >= 32
    header = response.headers["Set-Cookie"]
    assert "HttpOnly" in header
    assert "Secure" in header
    assert "SameSite=Lax" in header
    cookie = response.cookies["omnihub_session"].value

    def stored(session: Session) -> tuple[list[str], str | None]:
        digests = list(session.scalars(select(ManagerSession.token_sha256)))
        hashed = session.scalar(select(Manager.password_hash))
        return digests, hashed

    digests, hashed = await db.read(stored)
    assert len(digests) == 1
    assert cookie not in digests  # only its SHA-256
    assert hashed is not None
    assert hashed.startswith("$argon2id$")


async def test_cookie_session_needs_csrf_for_changes_and_ends_at_logout(client: Client) -> None:
    login = await (await client.post("/api/v1/session", json=LOGIN)).json()
    csrf = login["csrf_token"]
    me = await client.get("/api/v1/me")
    assert me.status == 200
    assert (await me.json())["csrf_token"] == csrf
    forged = await client.patch("/api/v1/me", json={"locale": "en"})
    assert forged.status == 403
    assert (await forged.json())["error"] == "csrf"
    wrong = await client.patch("/api/v1/me", json={"locale": "en"}, headers={"X-CSRF-Token": "x"})
    assert wrong.status == 403
    changed = await client.patch(
        "/api/v1/me", json={"locale": "en"}, headers={"X-CSRF-Token": csrf}
    )
    assert (await changed.json())["manager"]["locale"] == "en"
    out = await client.delete("/api/v1/session", headers={"X-CSRF-Token": csrf})
    assert out.status == 204
    after = await client.get("/api/v1/me")
    assert after.status == 401


async def test_session_expires(client: Client, clock: ManualClock) -> None:
    await client.post("/api/v1/session", json=LOGIN)
    assert (await client.get("/api/v1/inbox")).status == 200
    clock.advance(timedelta(hours=12, seconds=1))
    assert (await client.get("/api/v1/inbox")).status == 401


async def test_wrong_passwords_are_braked(client: Client, clock: ManualClock) -> None:
    wrong = {**LOGIN, "password": "guess"}
    for _ in range(3):
        response = await client.post("/api/v1/session", json=wrong)
        assert response.status == 401
        assert (await response.json())["message"] == "the email or the password is wrong"
    braked = await client.post("/api/v1/session", json=LOGIN)  # even the right password
    assert braked.status == 429
    assert 0 < int(braked.headers["Retry-After"]) <= 15 * 60
    unknown = await client.post(
        "/api/v1/session", json={"email": "nobody@example.test", "password": "x"}
    )
    assert unknown.status == 401  # an unknown email looks the same as a wrong password
    clock.advance(timedelta(minutes=15, seconds=1))
    assert (await client.post("/api/v1/session", json=LOGIN)).status == 200


async def test_bad_login_bodies_are_400(client: Client) -> None:
    for body in ({}, {"email": "a@b.c"}, {"email": "a@b.c", "password": "x", "extra": 1}):
        response = await client.post("/api/v1/session", json=body)
        assert response.status == 400, body
    assert (await client.get("/api/v1/me")).status == 401


async def test_credentials_with_bytes_that_are_not_utf8_are_refused_without_a_traceback(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    login = await client.post("/api/v1/session", json=LOGIN)
    cookie = login.cookies[SESSION_COOKIE].value.encode()
    cases = [
        ("GET", [("Authorization", b"Bearer " + LATIN1_BYTES)], 401),
        ("GET", [("Cookie", SESSION_COOKIE.encode() + b"=" + LATIN1_BYTES)], 401),
        (
            "PATCH",
            [("Cookie", SESSION_COOKIE.encode() + b"=" + cookie), ("X-CSRF-Token", LATIN1_BYTES)],
            403,
        ),
        ("DELETE", [("Cookie", SESSION_COOKIE.encode() + b"=" + LATIN1_BYTES)], 401),
    ]
    for method, headers, status in cases:
        path = "/api/v1/session" if method == "DELETE" else "/api/v1/me"
        body = b'{"locale": "en"}' if method == "PATCH" else b""
        answer = await raw_request(client, method, path, headers, body)
        assert answer.status == status, (method, headers, answer.body)
        assert answer.json()["error"] == ("csrf" if status == 403 else "unauthorized")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
