"""schemathesis over the CRM and inbox API, with data in place: no request gets a 5xx.

It runs as the head of sales (who reaches every record) and as a manager (whose scope
turns most ids into 404s), after three clients have written in through the API.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.people import create_api_token, create_manager
from hub.api.openapi import document
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN
from tests.schemathesis_run import fuzz

# Fuzzed elsewhere (webhooks), not HTTP (live), or a login flow (session).
SKIPPED = ("/api/v1/webhooks/", "/api/v1/live", "/api/v1/session", "/api/v1/routing")


def _schema() -> dict[str, Any]:
    doc = copy.deepcopy(document())
    doc["paths"] = {
        path: item
        for path, item in doc["paths"].items()
        if path.startswith("/api/v1/") and not path.startswith(SKIPPED)
    }
    return doc


@pytest.mark.timeout(300)  # every check of schemathesis, its stateful phase included
@pytest.mark.parametrize("role", [Role.HEAD, Role.MANAGER])
async def test_no_server_errors_with_data(
    sqlite_url: str, clock: ManualClock, tmp_path: Path, role: Role
) -> None:
    db = Database(sqlite_url)
    try:

        def people(session: Session) -> tuple[str, str]:
            journal = Journal("test", WHEN)
            manager = create_manager(
                session, journal, email="m@example.test", name="M", role=role, team="Sales"
            )
            personal = create_api_token(session, journal, "fuzz", manager.id)[1]
            integration = create_api_token(session, journal, "seed")[1]
            journal.flush(session)
            return personal, integration

        personal, integration = await db.write(people)
    finally:
        await db.dispose()

    async def seed(base: str) -> None:
        async with aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {integration}"}
        ) as client:
            for n in range(3):
                body = {
                    "channel": "telegram",
                    "channel_account": "bot",
                    "external_id": f"seed-{n}",
                    "sender": {
                        "name": f"C{n}",
                        "identities": [{"kind": "telegram", "value": f"{n + 100}"}],
                    },
                    "text": "hello",
                }
                async with client.post(f"{base}/api/v1/inbound", json=body) as response:
                    assert response.status == 201

    settings = Settings(database_url=sqlite_url, media_dir=str(tmp_path / "media"))
    await fuzz(
        create_app(settings, clock=clock),
        _schema(),
        [f"Authorization: Bearer {personal}"],
        tmp_path,
        before=seed,
    )
