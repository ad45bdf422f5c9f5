"""Email ingest benchmark: a 5,000-message mailbox in a real Dovecot, read twice in one run.

1. the baseline: raw aioimaplib ``UID FETCH`` of every message (batches of 200),
2. the hub: ``MailboxReader.catch_up`` over the same folder (parse, guards, attachment
   store, ingest into SQLite with the UID checkpoint in each message's transaction).

Prints both rates and their ratio. Run as ``.venv/bin/python -m bench.email [--messages N]``
(root, with Debian's dovecot-imapd installed: ``./dev test`` installs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and "email" would be this
# file, not the standard library: put the repository root there instead.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.orm import Session

from connectors.email import imap
from connectors.email.config import MailboxConfig, ServerConfig
from connectors.email.intake import MailIntake, Outcome
from connectors.email.reader import MailboxReader
from connectors.store import FileStore
from crm_core import migrate
from crm_core.clock import SystemClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.people import create_manager
from tests.integration.email.peers import USERS, Dovecot, dovecot_available

SALES = "sales@example.test"
BATCH = 200
SEED = 20261127
TEXTS = (
    "Здравствуйте! Сколько стоит курс по PostgreSQL для команды из 5 человек?",
    "Добрый день, пришлите, пожалуйста, счёт на оплату вебинара.",
    "Hello, do you offer a discount for early registration to the conference?",
    "Подскажите, есть ли рассрочка на марафон? Спасибо.",
)


def _letters(count: int) -> list[bytes]:
    rng = random.Random(SEED)
    start = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    letters = []
    for n in range(1, count + 1):
        mail = EmailMessage()
        sender = f"client{rng.randrange(count // 2 or 1)}@example.org"  # some write twice
        mail["From"] = f"Клиент {n} <{sender}>"
        mail["To"] = SALES
        mail["Subject"] = f"Вопрос №{n}"
        mail["Message-ID"] = f"<bench-{n}@example.org>"
        mail["Date"] = format_datetime(start + timedelta(seconds=n))
        text = rng.choice(TEXTS)
        if n % 3 == 0:
            mail.set_content(text.encode("cp1251"), "text", "plain", cte="8bit")
            mail.replace_header("Content-Type", "text/plain; charset=windows-1251")
        else:
            mail.set_content(text)
        if n % 4 == 0:
            mail.add_alternative(f"<p>{text}</p><p><b>--</b><br>Клиент {n}</p>", subtype="html")
        letters.append(mail.as_bytes())
    return letters


async def _managers(db: Database) -> None:
    def work(session: Session) -> None:
        journal = Journal("bench", datetime.now(UTC))
        for i in range(1, 6):
            create_manager(
                session,
                journal,
                email=f"m{i}@example.test",
                name=f"Manager {i}",
                role=Role.MANAGER,
                team="Sales",
                capacity=100_000,
            )
        journal.flush(session)

    await db.write(work)


async def main(count: int) -> None:
    if not dovecot_available():
        raise SystemExit("bench/email.py needs Dovecot: apt-get install dovecot-imapd")
    root = Path(tempfile.mkdtemp(prefix="omnihub-bench-dovecot-"))
    dovecot = Dovecot(root)
    dovecot.start()
    server = ServerConfig("127.0.0.1", dovecot.port, "none", SALES, USERS[SALES])
    try:
        letters = _letters(count)
        size = sum(map(len, letters))
        started = time.perf_counter()
        async with imap.session(server) as client:
            for data in letters:
                await imap.append(client, data, "INBOX")
        append_s = time.perf_counter() - started
        print(f"filled INBOX: {count} messages, {size / 1e6:.1f} MB in {append_s:.1f} s (APPEND)")

        # 1. Baseline: the raw FETCH rate from the same server.
        started = time.perf_counter()
        fetched = 0
        async with imap.session(server) as client:
            await imap.select(client, "INBOX")
            uids = await imap.uids_after(client, 0)
            for i in range(0, len(uids), BATCH):
                fetched += len(await imap.fetch(client, uids[i : i + BATCH]))
        fetch_s = time.perf_counter() - started
        assert fetched == count, fetched

        # 2. The hub: the reader's catch-up into a fresh SQLite hub.
        work = Path(tempfile.mkdtemp(prefix="omnihub-bench-email-"))
        url = f"sqlite:///{work / 'hub.sqlite3'}"
        migrate.upgrade(url)
        db = Database(url)
        try:
            await _managers(db)
            service = IngestService(db, SystemClock(), IngestPolicy())
            mailbox = MailboxConfig(
                key="sales",
                address=SALES,
                imap=server,
                smtp=ServerConfig("127.0.0.1", 25, "none", SALES, ""),
                batch_size=BATCH,
            )
            intake = MailIntake(mailbox, service, FileStore(work / "media"))
            reader = MailboxReader(mailbox, service, intake)
            started = time.perf_counter()
            async with imap.session(server) as client:
                uidvalidity = await imap.select(client, "INBOX")
                read = await reader.catch_up(client, uidvalidity)
            hub_s = time.perf_counter() - started
        finally:
            await db.dispose()
        assert read == count, read
        assert reader.counts[Outcome.INGESTED] == count, reader.counts

        fetch_rate = count / fetch_s
        hub_rate = count / hub_s
        print(f"raw aioimaplib UID FETCH: {fetch_rate:8.0f} messages/s ({fetch_s:.2f} s)")
        print(f"hub ingest (SQLite):      {hub_rate:8.0f} messages/s ({hub_s:.2f} s)")
        print(f"hub / raw FETCH:          {hub_rate / fetch_rate:8.3f}")
    finally:
        dovecot.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    asyncio.run(main(parser.parse_args().messages))
