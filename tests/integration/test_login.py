"""The login's edges: one brake per person however the email is written, no login from
another site's page, and a 4xx (never a 500) for whatever the body holds."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.people import create_manager
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
PASSWORD = "correct horse battery"
SESSION = "/api/v1/session"


@pytest.fixture
async def client(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> Client:
    def work(session: Session) -> None:
        journal = Journal("test", WHEN)
        create_manager(session, journal, email="boris@sec.example", name="Boris", password=PASSWORD)
        journal.flush(session)

    await db.write(work)
    settings = Settings(database_url=database_url, session_cookie_secure=False)
    return await aiohttp_client(create_app(settings, clock=clock))


async def test_variants_of_one_email_share_one_brake(client: Client) -> None:
    variants = [
        "boris@sec.example.",  # a trailing dot
        "\uff42oris@sec.example",  # a full-width b
        "boris@sec\u3002example",  # an ideographic full stop
        "BORIS@SEC.EXAMPLE",
        "boris@sec\uff0eexample\uff61",  # full-width and half-width full stops
    ]
    for email in variants:
        wrong = await client.post(SESSION, json={"email": email, "password": "guess"})
        assert wrong.status == 401, email
    braked = await client.post(SESSION, json={"email": "boris@sec.example", "password": PASSWORD})
    assert braked.status == 429
    assert "Retry-After" in braked.headers


async def test_any_variant_of_the_email_logs_in(client: Client) -> None:
    email = " \uff22\uff2f\uff32\uff29\uff33\uff20sec\u3002example. "
    response = await client.post(SESSION, json={"email": email, "password": PASSWORD})
    assert response.status == 200
    assert (await response.json())["manager"]["email"] == "boris@sec.example"


async def test_a_login_from_another_site_is_refused(client: Client) -> None:
    body = json.dumps({"email": "boris@sec.example", "password": PASSWORD})
    own = f"http://{client.host}:{client.port}"
    refused: list[tuple[dict[str, str], int, str]] = [
        ({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
        ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"),
        ({}, 415, "unsupported_media_type"),
        ({"Content-Type": "application/json", "Origin": "https://evil.example"}, 403, "origin"),
        ({"Content-Type": "text/plain", "Origin": "https://evil.example"}, 403, "origin"),
        ({"Content-Type": "application/json", "Origin": "null"}, 403, "origin"),
        ({"Content-Type": "application/json", "Origin": f"https://{client.host}:1"}, 403, "origin"),
    ]
    for headers, status, error in refused:
        response = await client.post(SESSION, data=body, headers=headers)
        assert response.status == status, headers
        assert (await response.json())["error"] == error
        assert "Set-Cookie" not in response.headers
    for headers in (
        {"Content-Type": "application/json", "Origin": own},
        {"Content-Type": "application/json; charset=utf-8"},  # no Origin: not a browser
    ):
        response = await client.post(SESSION, data=body, headers=headers)
        assert response.status == 200, headers
        assert "Set-Cookie" in response.headers


async def test_odd_login_bodies_are_400_naming_the_field(client: Client) -> None:
    odd = [
        ({"email": "boris\u0000@sec.example", "password": PASSWORD}, "email"),
        ({"email": "boris@sec.example", "password": "correct\u0000horse"}, "password"),
        ({"email": "b" * 100_000 + "@sec.example", "password": PASSWORD}, "email"),
        ({"email": "boris@sec.example", "password": "p" * 100_000}, "password"),
        ({"email": 5, "password": PASSWORD}, "email"),
        ({"email": "boris@sec.example", "password": ["x"]}, "password"),
    ]
    for body, field in odd:
        response = await client.post(SESSION, json=body)
        assert response.status == 400, field
        answer = await response.json()
        assert answer["errors"][0]["field"] == field, answer


async def test_behind_a_trusted_proxy_each_client_has_its_own_address_brake(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> None:
    def work(session: Session) -> None:
        journal = Journal("test", WHEN)
        create_manager(session, journal, email="anna@sec.example", name="Anna", password=PASSWORD)
        journal.flush(session)

    await db.write(work)
    settings = Settings(
        database_url=database_url, session_cookie_secure=False, trusted_proxies="127.0.0.1"
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    guesser = {"X-Forwarded-For": "203.0.113.66"}
    for n in range(40):  # many emails, one address: past its budget (x4 of one email's)
        wrong = await client.post(
            SESSION, json={"email": f"nobody{n}@sec.example", "password": "x"}, headers=guesser
        )
        if wrong.status == 429:
            break
    assert wrong.status == 429  # the guesser's address is braked...
    anna = await client.post(
        SESSION,
        json={"email": "anna@sec.example", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.20"},
    )
    assert anna.status == 200  # ...not Anna, who comes through the same proxy
