"""Without pjsua2 the hub still starts, says why telephony is off, and answers 409 to
click-to-call (calls then come only from PBX webhooks)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from crm_core.db import Database
from hub import sip
from hub.app import create_app
from hub.settings import Settings, SettingsError
from tests.factories import api_token

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
LINES = {"lines": [{"key": "office", "port": 5099, "managers": {"1": "sip:anna@pbx"}}]}


async def test_hub_runs_without_pjsua2_and_says_so(
    sqlite_url: str,
    aiohttp_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sip, "available", lambda: False)
    caplog.set_level(logging.WARNING, logger="hub.sip")
    client = await aiohttp_client(
        create_app(Settings(database_url=sqlite_url, channels={"sip": LINES}))
    )
    assert sip.MISSING in caplog.text
    assert (await client.get("/healthz")).status == 200
    db = Database(sqlite_url)
    try:
        token = await api_token(db)
    finally:
        await db.dispose()
    answer = await client.post(
        "/api/v1/calls",
        json={"contact_id": 1, "manager_id": 1},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status == 409
    assert (await answer.json())["error"] == "telephony_off"


def test_a_bad_line_stops_the_start_with_its_reason(sqlite_url: str) -> None:
    with pytest.raises(SettingsError, match=r"lines\[0\]\.mode"):
        create_app(
            Settings(
                database_url=sqlite_url,
                channels={"sip": {"lines": [{"key": "x", "mode": "shout"}]}},
            )
        )
