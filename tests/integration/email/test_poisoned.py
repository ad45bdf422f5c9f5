"""A mail whose handling keeps raising (not a refusal the core explains) is parked after
``poison_attempts`` failures and the folder moves on: the other mails are stored, and an
admin's retry files it again (rule 9 of the house). Against a real Dovecot."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.email.intake import MailIntake, Outcome
from connectors.email.reader import Backoff, MailboxReader
from connectors.store import FileStore
from crm_core import parked
from crm_core.clock import ManualClock
from crm_core.contracts import Checkpoint, Edit, IdentityRef, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Message, ParkedItem
from crm_core.poisoned import PoisonedItems
from tests.factories import add_managers
from tests.integration.email.conftest import mailbox_for
from tests.integration.email.mail import deliver, letter, wait_until
from tests.integration.email.peers import USERS, Dovecot

POISON = "letter-5@example.org"  # the mail whose handling raises


class SickIngestor:
    """The real ingest service, except that it falls over the poisoned mail while ``sick``."""

    def __init__(self, service: IngestService) -> None:
        self.service = service
        self.sick = True
        self.calls = 0

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        if self.sick and POISON in message.external_id:
            self.calls += 1
            raise RuntimeError("the core fell over this mail")
        return await self.service.ingest(message, checkpoint)

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        return await self.service.checkpoint(channel, channel_account, key)

    async def edit(self, edit: Edit) -> bool:
        return await self.service.edit(edit)

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        return await self.service.mark_unreachable(identity, reason)


async def _external_ids(db: Database) -> list[str]:
    return await db.read(lambda s: sorted(s.scalars(select(Message.external_id))))


async def _parked_rows(db: Database) -> list[ParkedItem]:
    return await db.read(lambda s: list(s.scalars(select(ParkedItem).order_by(ParkedItem.id))))


async def test_a_poisoned_mail_is_parked_after_the_attempts_and_the_folder_moves_on(
    dovecot: Dovecot,
    db: Database,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await add_managers(db, 2)
    service = IngestService(db, clock, IngestPolicy())
    sick = SickIngestor(service)
    store = FileStore(tmp_path / "media")
    mailbox = replace(mailbox_for(dovecot, batch_size=4), poison_attempts=3)
    intake = MailIntake(mailbox, sick, store)
    ledger = PoisonedItems(db, clock, "email", "uid:")
    reader = MailboxReader(mailbox, sick, intake, Backoff(first=0.05, longest=0.2), ledger=ledger)
    await deliver(dovecot, *(letter(n) for n in range(1, 13)))

    task = asyncio.create_task(reader.run_forever())
    try:

        async def done() -> bool:
            stored = await service.checkpoint(Channel.EMAIL, "sales", "INBOX")
            return stored is not None and stored.endswith(":12") and reader.parked == 1

        await wait_until(done, 30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert sick.calls == 3
    stored = await _external_ids(db)
    assert len(stored) == 11
    assert not any(POISON in e for e in stored)
    assert reader.counts[Outcome.PARKED] == 1

    [item] = await _parked_rows(db)
    uidvalidity = item.detail["uidvalidity"]
    assert (item.channel, item.account, item.item_key) == ("email", "sales", f"uid:{uidvalidity}:5")
    assert (item.status, item.attempts, item.next_attempt_at) == ("parked", 3, None)
    assert item.reason == "RuntimeError: the core fell over this mail"
    assert (item.detail["folder"], item.detail["uid"]) == ("INBOX", "5")
    assert POISON.encode() in await store.get(item.detail["raw"])
    assert "mailbox sales/INBOX: uid 5 failed 3 times: parked" in caplog.text
    assert USERS["sales@example.test"] not in caplog.text

    sick.sick = False  # healed; an admin retries it

    def retry(session: Session) -> None:
        journal = Journal("admin", clock.now())
        assert parked.retry_now(session, journal, item.id) is not None
        journal.flush(session)

    await db.write(retry)
    assert await reader.retry_parked() == 1
    assert any(POISON in e for e in await _external_ids(db))
    assert await _parked_rows(db) == []
    # the folder's checkpoint stayed where it was: the retry did not move it back
    assert (await service.checkpoint(Channel.EMAIL, "sales", "INBOX") or "").endswith(":12")
