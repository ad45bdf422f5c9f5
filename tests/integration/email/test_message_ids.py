"""Mailers reuse Message-IDs: a different mail under a seen id is kept, and logged; the
same mail delivered twice (through another hop, say) is still stored once. Real Dovecot,
both databases."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.email import imap
from connectors.email.intake import MailIntake, Outcome
from connectors.email.reader import MailboxReader
from connectors.store import FileStore
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Message
from tests.factories import add_managers
from tests.integration.email.conftest import mailbox_for
from tests.integration.email.mail import deliver, letter, server
from tests.integration.email.peers import Dovecot

HOP = b"Received: from mx2.example.org by mx1.example.test; Mon, 2 Mar 2026 07:01:00 +0000\n"


async def _read_all(reader: MailboxReader, dovecot: Dovecot) -> None:
    async with imap.session(server(dovecot)) as client:
        await reader.catch_up(client, await imap.select(client, "INBOX"))


async def test_a_reused_message_id_keeps_both_mails_and_a_repeat_once(
    dovecot: Dovecot,
    database_url: str,
    db: Database,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await add_managers(db, 1)
    service = IngestService(db, clock, IngestPolicy())
    mailbox = mailbox_for(dovecot)
    reader = MailboxReader(mailbox, service, MailIntake(mailbox, service, FileStore(tmp_path)))
    first = letter(1, text="Сколько стоит кластер?")
    other = letter(1, text="А сколько стоит резервное копирование?")  # the same Message-ID
    caplog.set_level(logging.INFO, logger="connectors.email.intake")
    await deliver(dovecot, first, first, other, HOP + other, HOP + first)
    await _read_all(reader, dovecot)

    def stored(session: Session) -> list[tuple[str | None, str]]:
        rows = session.execute(select(Message.external_id, Message.text).order_by(Message.id))
        return [(external_id, text) for external_id, text in rows]

    [(id1, text1), (id2, text2)] = await db.read(stored)
    assert (id1, text1) == ("letter-1@example.org", "Вопрос №1\n\nСколько стоит кластер?")
    assert id2 is not None
    assert id2.startswith("letter-1@example.org#")
    assert text2 == "Вопрос №1\n\nА сколько стоит резервное копирование?"
    assert reader.counts[Outcome.INGESTED] == 1
    assert reader.counts[Outcome.REUSED_ID] == 1
    assert reader.counts[Outcome.DUPLICATE] == 3
    ours = [r for r in caplog.records if r.name == "connectors.email.intake"]
    reused = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    assert len(reused) == 1
    assert "letter-1@example.org reuses a Message-ID" in reused[0]
    assert id2 in reused[0]
    assert len([r for r in ours if "already stored" in r.getMessage()]) == 3

    # Reading the folder again from the start (UIDVALIDITY changed) stores nothing twice.
    intake = MailIntake(mailbox, service, FileStore(tmp_path))
    async with imap.session(server(dovecot)) as client:
        await imap.select(client, "INBOX")
        fetched = await imap.fetch(client, await imap.uids_after(client, 0))
    outcomes = [await intake.accept(raw) for raw in fetched.values()]
    assert outcomes == [Outcome.DUPLICATE] * 5
    assert len(await db.read(stored)) == 2
