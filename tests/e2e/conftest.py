"""The inbox in a real browser: Debian's Chromium driven by Playwright, against a hub
started in this process on a free port with its own SQLite file.

Playwright's own browser download does not work here and is never run: the tests launch
``/usr/bin/chromium`` (``apt-get install chromium``; ``./dev test`` installs it). Without
it the tests fail in CI and are skipped elsewhere, saying what to install.
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.contracts import DeliveryReceipt, OutboundMessage
from crm_core.db import Database
from crm_core.enums import Channel, Role
from crm_core.journal import Journal
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.keys import DATABASE
from hub.settings import Settings
from tests.conftest import IN_CI
from tests.factories import WHEN

CHROMIUM = Path(os.environ.get("OMNIHUB_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
WAIT_MS = 10_000  # every expect and wait in these tests gives up after this

try:
    from playwright.async_api import Browser, async_playwright, expect

    expect.set_options(timeout=WAIT_MS)
except ImportError:  # pragma: no cover - the dev extra installs it
    async_playwright = None  # type: ignore[assignment]


def _missing() -> str | None:
    if async_playwright is None:
        return "playwright (pip install -e '.[dev]')"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    missing = _missing()
    if missing is not None:
        if IN_CI:
            pytest.fail(f"the browser tests need {missing}; ./dev test installs it")
        pytest.skip(f"{missing} is missing; ./dev test installs it")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


class CapturedSender:
    """A channel's outbound half that keeps what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[OutboundMessage] = []

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        self.sent.append(message)
        return DeliveryReceipt(external_id=f"sent-{message.message_id}")


@dataclass
class Hub:
    """A running hub and the people in it."""

    url: str
    app: web.Application
    db: Database
    token: str
    managers: dict[str, int]
    emails: dict[str, str]
    telegram: CapturedSender
    clock: ManualClock
    _ids: int = field(default=0)

    async def inbound(self, **body: Any) -> dict[str, Any]:
        """POST /api/v1/inbound with the integration token, as a website or a bot would."""
        self._ids += 1
        body.setdefault("external_id", f"e2e-{self._ids}")
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.url}/api/v1/inbound",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as response,
        ):
            data = await response.json()
            assert response.status == 201, data
            assert isinstance(data, dict)
            return data


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PEOPLE = {
    # key: (name, email, role, team)
    "anna": ("Анна Петрова", "anna@example.test", Role.MANAGER, "Sales"),
    "boris": ("Борис Иванов", "boris@example.test", Role.MANAGER, "Sales"),
    "helen": ("Елена Смирнова", "helen@example.test", Role.HEAD, None),
}


@pytest.fixture
async def hub(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Hub]:
    async with running_hub(sqlite_url, tmp_path) as running:
        yield running


@asynccontextmanager
async def running_hub(
    sqlite_url: str,
    tmp_path: Path,
    channels: Mapping[str, Any] | None = None,
    port: int | None = None,
    sales_hours: str = "",
) -> AsyncIterator[Hub]:
    """A hub on ``port`` (else a free one) with the people of :data:`PEOPLE`; every new
    conversation goes to Anna. ``channels`` is the settings' ``[channels.*]`` tables;
    ``sales_hours`` the Sales team's working hours in YAML (none: always open)."""
    db = Database(sqlite_url)

    def people(session: Session) -> tuple[dict[str, int], str]:
        journal = Journal("test", WHEN)
        ids = {
            key: create_manager(
                session,
                journal,
                email=email,
                name=name,
                role=role,
                team=team,
                password=PASSWORD,
            ).id
            for key, (name, email, role, team) in PEOPLE.items()
        }
        _row, plain = create_api_token(session, journal, "website")
        journal.flush(session)
        return ids, plain

    try:
        ids, token = await db.write(people)
    finally:
        await db.dispose()
    # Every new conversation goes to Anna, so the test knows whose list it lands in.
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "teams:\n"
        f"  Sales:\n    mode: evenly\n    members: [{ids['anna']}]\n"
        + (f"    hours: {sales_hours}\n" if sales_hours else "")
        + "rules:\n  - name: default\n    team: Sales\n",
        encoding="utf-8",
    )
    settings = Settings(
        database_url=sqlite_url,
        routing_file=str(routing),
        media_dir=str(tmp_path / "media"),
        session_cookie_secure=False,
        outbox_poll_seconds=0.2,
        channels=dict(channels or {}),
    )
    telegram = CapturedSender()
    # A manual clock (moved by the tests, never waited on) that starts near the wall
    # clock, so that the screenshot's times read naturally.
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3))
    app = create_app(settings, clock=clock, senders={Channel.TELEGRAM: telegram})
    runner = web.AppRunner(app)
    await runner.setup()
    port = port or free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        yield Hub(
            url=f"http://127.0.0.1:{port}",
            app=app,
            db=app[DATABASE],
            token=token,
            managers=ids,
            emails={key: spec[1] for key, spec in PEOPLE.items()},
            telegram=telegram,
            clock=clock,
        )
    finally:
        await runner.cleanup()
