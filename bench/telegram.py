"""Telegram polling benchmark: raw ``getUpdates`` paging vs. the connector storing into SQLite.

Both read N queued updates from the same local Bot API server (a separate process), in the
same run: (a) an aiohttp client paging through ``getUpdates`` with the offset, no database;
(b) the hub's polling connector (aiogram, mapping, ingest into a migrated SQLite file,
each update committed before the offset moves on). Then checks each update was stored once.

Run as ``.venv/bin/python -m bench.telegram [--updates 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.store import FileStore
from connectors.telegram.client import make_bot
from connectors.telegram.config import BotConfig
from connectors.telegram.media import MediaFetcher
from connectors.telegram.polling import Poller
from connectors.telegram.updates import UpdateHandler
from crm_core import migrate
from crm_core.clock import SystemClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Contact, Message
from crm_core.people import create_manager

RAW_TOKEN = "111111:BENCH-raw-getupdates-token"
HUB_TOKEN = "222222:BENCH-hub-polling-token"
MANAGERS = 5
ROOT = Path(__file__).resolve().parents[1]


async def raw_rate(base: str, count: int) -> float:
    """Updates/s of a bare client paging through getUpdates (confirming as it goes)."""
    seen = 0
    offset = 0
    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        while seen < count:
            params = {"offset": offset, "limit": 100, "timeout": 0}
            async with session.post(f"{base}/bot{RAW_TOKEN}/getUpdates", json=params) as answer:
                body = await answer.json()
            updates = body["result"]
            if not updates:
                break
            seen += len(updates)
            offset = updates[-1]["update_id"] + 1
    elapsed = time.perf_counter() - started
    if seen != count:
        raise SystemExit(f"raw client saw {seen} updates, expected {count}")
    return count / elapsed


async def hub_rate(base: str, count: int, folder: Path, concurrency: int) -> tuple[float, int, int]:
    """Updates/s of the polling connector until every update is committed to SQLite."""
    url = f"sqlite:///{folder / 'bench.sqlite3'}"
    migrate.upgrade(url)
    db = Database(url)
    clock = SystemClock()

    def managers(session: Session) -> None:
        journal = Journal("bench", clock.now())
        for i in range(MANAGERS):
            create_manager(
                session, journal, email=f"m{i}@bench.test", name=f"M{i}", role=Role.MANAGER
            )
        journal.flush(session)

    await db.write(managers)
    config = BotConfig("benchbot", HUB_TOKEN, api_base=base, polling_timeout=0)
    bot = make_bot(config)
    ingest = IngestService(db, clock, IngestPolicy())
    poller = Poller(
        UpdateHandler(config, bot, ingest, MediaFetcher(FileStore(folder), 1 << 20)),
        concurrency=concurrency,
    )
    try:
        started = time.perf_counter()
        while poller.committed < count:
            if not await poller.poll_once():
                break
        elapsed = time.perf_counter() - started
        await poller.poll_once()  # confirm the last batch

        def totals(session: Session) -> tuple[int, int]:
            messages = session.scalar(select(func.count()).select_from(Message)) or 0
            contacts = session.scalar(select(func.count()).select_from(Contact)) or 0
            return int(messages), int(contacts)

        stored, contacts = await db.read(totals)
    finally:
        await bot.session.close()
        await db.dispose()
    return poller.committed / elapsed, stored, contacts


async def run(count: int, concurrency: int) -> int:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.telegram.fake_bot_api",
        "--tokens",
        f"{RAW_TOKEN},{HUB_TOKEN}",
        "--updates",
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=ROOT,
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        base = (await server.stdout.readline()).decode().strip()
        if not base.startswith("http://"):
            raise SystemExit("the local Bot API server did not start")
        raw = await raw_rate(base, count)
        with tempfile.TemporaryDirectory() as folder:
            hub, stored, contacts = await hub_rate(base, count, Path(folder), concurrency)
    finally:
        server.stdin.close()
        await asyncio.wait_for(server.wait(), 10)
    print(f"updates queued per bot:               {count} (chats in parallel: {concurrency})")
    print(f"raw getUpdates paging (no database):  {raw:,.0f} updates/s")
    print(f"polling connector into SQLite:        {hub:,.0f} updates/s")
    print(f"ratio connector / raw:                {hub / raw:.3f}")
    print(f"stored messages: {stored} (expected {count}), contacts: {contacts}")
    return 0 if stored == count else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32, help="chats handled at once")
    args = parser.parse_args()
    raise SystemExit(asyncio.run(run(args.updates, args.concurrency)))


if __name__ == "__main__":
    main()
