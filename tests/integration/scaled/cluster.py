"""Real ``omnihub web`` and ``omnihub worker`` processes on one PostgreSQL database and Redis,
the people who use them, and ways to load them and count what they stored."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import ContactIdentity, Message
from crm_core.people import create_api_token, create_manager
from tests.factories import WHEN
from tests.integration.test_cli import OMNIHUB, ROOT, _free_port

ADMIN_EMAIL = "admin@example.test"
ADMIN_PASSWORD = "admin-password"


@dataclass
class HubProcess:
    role: str  # "web" or "worker"
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.role} :{self.port} log ---\n" + "\n".join(text.splitlines()[-lines:])


@dataclass
class Cluster:
    """Starts hub processes with one environment; :meth:`stop` kills what is still running."""

    folder: Path
    env: dict[str, str]
    started: list[HubProcess] = field(default_factory=list)

    def start(self, role: str) -> HubProcess:
        port = _free_port()
        log = self.folder / f"{role}-{port}.log"
        args = ["web", "--host", "127.0.0.1"] if role == "web" else ["worker"]
        with log.open("wb") as out:
            process = subprocess.Popen(
                [*OMNIHUB, *args, "--port", str(port)],
                cwd=self.folder,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        hub = HubProcess(role, port, process, log)
        self.started.append(hub)
        return hub

    async def ready(self, *hubs: HubProcess, seconds: float = 60) -> None:
        """Wait until each answers ``GET /healthz`` with 200."""
        deadline = time.monotonic() + seconds
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
            for hub in hubs:
                while True:
                    assert hub.process.poll() is None, hub.log_tail()
                    try:
                        async with client.get(hub.base + "/healthz") as response:
                            if response.status == 200:
                                break
                    except (aiohttp.ClientError, TimeoutError):
                        pass
                    assert time.monotonic() < deadline, (
                        f"not ready in {seconds} s\n{hub.log_tail()}"
                    )
                    await asyncio.sleep(0.1)

    def logs(self) -> str:
        return "\n".join(hub.log_tail() for hub in self.started)

    def stop(self) -> None:
        for hub in self.started:
            if hub.process.poll() is None:
                hub.process.send_signal(signal.SIGINT)
        for hub in self.started:
            try:
                hub.process.wait(10)
            except subprocess.TimeoutExpired:
                hub.process.kill()
                hub.process.wait()


def hub_env(pg_url: str, redis_url: str, folder: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")},
        "PYTHONPATH": str(ROOT),
        "OMNIHUB_DATABASE_URL": pg_url,
        "OMNIHUB_REDIS_URL": redis_url,
        "OMNIHUB_MIGRATE_ON_START": "false",
        "OMNIHUB_SESSION_COOKIE_SECURE": "false",
        "OMNIHUB_OUTBOX_POLL_SECONDS": "0.2",
        "OMNIHUB_MEDIA_DIR": str(folder / "media"),
    }


async def seed_people(db: Database, managers: int = 5) -> str:
    """Managers for routing and an admin who can log in; the integration token."""

    def work(session: Session) -> str:
        journal = Journal("test", WHEN)
        for n in range(1, managers + 1):
            create_manager(session, journal, email=f"m{n}@example.test", name=f"M{n}", team="Sales")
        create_manager(
            session,
            journal,
            email=ADMIN_EMAIL,
            name="Admin",
            role=Role.ADMIN,
            password=ADMIN_PASSWORD,
        )
        token = create_api_token(session, journal, "crm sync")[1]
        journal.flush(session)
        return token

    return await db.write(work)


def inbound(external_id: str, phone: str, text: str = "Hello", **extra: Any) -> dict[str, Any]:
    return {
        "channel": "api",
        "channel_account": "website",
        "external_id": external_id,
        "sender": {"name": "Client", "identities": [{"kind": "phone", "value": phone}]},
        "text": text,
        **extra,
    }


@dataclass
class Answer:
    external_id: str
    status: int  # 0: no answer (the connection broke)
    data: dict[str, Any] | None = None
    error: str = ""


async def post_inbound(
    client: aiohttp.ClientSession, base: str, token: str, body: dict[str, Any]
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"}
    ext = str(body["external_id"])
    try:
        async with client.post(base + "/api/v1/inbound", json=body, headers=headers) as response:
            if response.status in (200, 201):
                return Answer(ext, response.status, dict(await response.json()))
            return Answer(ext, response.status, error=(await response.text())[:300])
    except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        return Answer(ext, 0, error=f"{type(exc).__name__}: {exc}")


async def bounded(jobs: list[Callable[[], Awaitable[Answer]]], concurrency: int) -> list[Answer]:
    """Run the jobs with at most ``concurrency`` in flight; answers in the jobs' order."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Callable[[], Awaitable[Answer]]) -> Answer:
        async with gate:
            return await job()

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def stored_inbound(db: Database) -> Counter[str]:
    """Inbound message rows by external id."""

    def work(session: Session) -> Counter[str]:
        rows = session.execute(
            select(Message.external_id, func.count())
            .where(Message.direction == "in")
            .group_by(Message.external_id)
        ).all()
        return Counter({str(ext): int(n) for ext, n in rows})

    return await db.read(work)


async def phone_owners(db: Database) -> dict[str, set[int]]:
    """E.164 phone -> the contacts holding it as an identity."""

    def work(session: Session) -> dict[str, set[int]]:
        rows = session.execute(
            select(ContactIdentity.value, ContactIdentity.contact_id).where(
                ContactIdentity.kind == "phone"
            )
        ).all()
        owners: dict[str, set[int]] = {}
        for value, contact in rows:
            owners.setdefault(str(value), set()).add(int(contact))
        return owners

    return await db.read(work)
