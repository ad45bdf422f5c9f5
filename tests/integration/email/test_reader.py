"""Reading a real Dovecot mailbox: backlogs, restarts, UIDVALIDITY resets, charsets, guards."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from connectors.email import imap
from connectors.email.config import MailboxConfig
from connectors.email.intake import MailIntake, Outcome
from connectors.email.reader import MailboxReader
from connectors.store import FileStore
from crm_core.clock import ManualClock
from crm_core.contracts import Checkpoint, IdentityRef, InboundMessage, IngestResult
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Contact, ContactIdentity, Deal, Message
from tests.factories import add_managers, count_rows
from tests.integration.email.conftest import mailbox_for
from tests.integration.email.mail import SALES, deliver, letter, server, wait_until
from tests.integration.email.peers import USERS, Dovecot


class StoppingIngestor:
    """The real ingest service; tells the test when ``after`` messages went in."""

    def __init__(self, service: IngestService, after: int) -> None:
        self.service = service
        self.after = after
        self.ingested = 0
        self.reached = asyncio.Event()

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult:
        result = await self.service.ingest(message, checkpoint)
        self.ingested += 1
        if self.ingested >= self.after:
            self.reached.set()
        return result

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        return await self.service.checkpoint(channel, channel_account, key)

    async def edit(self, edit: object) -> bool:
        raise NotImplementedError

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        return await self.service.mark_unreachable(identity, reason)


def _reader(
    mailbox: MailboxConfig, ingestor: StoppingIngestor | IngestService, tmp_path: Path
) -> MailboxReader:
    intake = MailIntake(mailbox, ingestor, FileStore(tmp_path / "media"))
    return MailboxReader(mailbox, ingestor, intake)


async def _service(db: Database, clock: ManualClock) -> IngestService:
    await add_managers(db, 2)
    return IngestService(db, clock, IngestPolicy())


async def _catch_up(reader: MailboxReader, dovecot: Dovecot) -> int:
    async with imap.session(server(dovecot)) as client:
        uidvalidity = await imap.select(client, "INBOX")
        await reader.catch_up(client, uidvalidity)
        return uidvalidity


async def test_restart_in_the_middle_of_a_backlog_loses_and_doubles_nothing(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        total = 300
        await deliver(dovecot, *(letter(n) for n in range(1, total + 1)))
        mailbox = mailbox_for(dovecot, batch_size=40)
        first = StoppingIngestor(service, after=100)
        task = asyncio.create_task(_reader(mailbox, first, tmp_path).run_forever())
        await asyncio.wait_for(first.reached.wait(), 40)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        before = await count_rows(db, Message)
        assert 100 <= before < total

        second = _reader(mailbox, service, tmp_path)
        task = asyncio.create_task(second.run_forever())

        async def done() -> bool:
            stored = await service.checkpoint(Channel.EMAIL, "sales", "INBOX")
            return stored is not None and stored.endswith(f":{total}")

        await wait_until(done, 45)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert await count_rows(db, Message) == total
        assert await count_rows(db, Contact) == total

        def distinct(session: Session) -> int:
            return int(session.scalar(select(func.count(func.distinct(Message.external_id)))) or 0)

        assert await db.read(distinct) == total
        # Read from the checkpoint: nothing before it was read again.
        assert second.counts[Outcome.DUPLICATE] == 0
        assert second.counts[Outcome.INGESTED] == total - before
    finally:
        await db.dispose()


async def test_uidvalidity_reset_resyncs_without_duplicates(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        await deliver(dovecot, *(letter(n) for n in range(1, 4)))
        reader = _reader(mailbox_for(dovecot), service, tmp_path)
        old = await _catch_up(reader, dovecot)
        assert reader.counts[Outcome.INGESTED] == 3

        new = old
        while new == old:  # Dovecot's UIDVALIDITY is the time the index was made
            dovecot.stop()
            dovecot.reset_uidvalidity(SALES)
            await asyncio.sleep(1.1)
            dovecot.start()
            async with imap.session(server(dovecot)) as client:
                new = await imap.select(client, "INBOX")
        await deliver(dovecot, letter(4))

        reader = _reader(mailbox_for(dovecot), service, tmp_path)
        assert await _catch_up(reader, dovecot) == new
        assert reader.counts[Outcome.DUPLICATE] == 3
        assert reader.counts[Outcome.INGESTED] == 1
        assert await count_rows(db, Message) == 4
        assert await service.checkpoint(Channel.EMAIL, "sales", "INBOX") == f"{new}:4"
    finally:
        await db.dispose()


def _cyrillic(n: int, charset: str, declared: str | None, cte: str) -> bytes:
    body = f"Добрый день! Письмо в {charset}: хочу оплатить счёт.".encode(charset)
    if cte == "base64":
        body = base64.encodebytes(body)
    name = base64.b64encode("Пётр Иванов".encode(charset)).decode()
    ctype = "text/plain" + (f"; charset={declared}" if declared else "")
    head = (
        f"From: =?{charset}?b?{name}?= <petr{n}@example.org>\r\nTo: {SALES}\r\n"
        f"Subject: =?{charset}?b?{base64.b64encode('Счёт'.encode(charset)).decode()}?=\r\n"
        f"Message-ID: <cyr-{n}@example.org>\r\nMIME-Version: 1.0\r\n"
        f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
    )
    return head.encode() + body


async def test_windows_1251_and_koi8_r_letters_read_correctly(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        cases = [
            ("windows-1251", "windows-1251", "8bit"),
            ("koi8-r", "koi8-r", "base64"),
            ("windows-1251", None, "8bit"),  # no declaration
            ("koi8-r", "windows-1251", "8bit"),  # a wrong declaration
        ]
        await deliver(dovecot, *(_cyrillic(n, *case) for n, case in enumerate(cases)))
        await _catch_up(_reader(mailbox_for(dovecot), service, tmp_path), dovecot)

        def texts(session: Session) -> list[str]:
            return list(session.scalars(select(Message.text).order_by(Message.id)))

        def names(session: Session) -> list[str | None]:
            return list(session.scalars(select(Contact.name).order_by(Contact.id)))

        for (charset, _declared, _cte), text in zip(cases, await db.read(texts), strict=True):
            assert text == f"Счёт\n\nДобрый день! Письмо в {charset}: хочу оплатить счёт."
        assert await db.read(names) == ["Пётр Иванов"] * len(cases)
    finally:
        await db.dispose()


async def test_auto_replies_bounces_and_our_own_mail_create_no_lead(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        gone = "gone@example.org"
        await deliver(dovecot, letter(1, sender=gone))  # a real lead first
        reader = _reader(mailbox_for(dovecot), service, tmp_path)
        await _catch_up(reader, dovecot)
        bounce = (
            b"From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
            b"To: sales@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            b"Message-ID: <bounce-1@mx.example.org>\r\nAuto-Submitted: auto-replied\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;"
            b' boundary="B"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nNo such user.\r\n'
            b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
            b"Reporting-MTA: dns; mx.example.org\r\n\r\n"
            b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\n"
            b"Status: 5.1.1\r\n\r\n--B--\r\n"
        )
        await deliver(
            dovecot,
            letter(2, text="I am on holiday", headers={"Auto-Submitted": "auto-replied"}),
            letter(3, headers={"Precedence": "bulk"}),
            letter(4, headers={"X-Autoreply": "yes"}),
            bounce,
            letter(5, sender=SALES, name="Sales"),
        )
        await _catch_up(reader, dovecot)
        assert reader.counts[Outcome.AUTO_REPLY] == 3
        assert reader.counts[Outcome.BOUNCE] == 1
        assert reader.counts[Outcome.OWN] == 1
        assert await count_rows(db, Contact) == 1
        assert await count_rows(db, Deal) == 1
        assert await count_rows(db, Message) == 1

        def flagged(session: Session) -> tuple[str | None, object]:
            row = session.execute(
                select(ContactIdentity.unreachable_reason, ContactIdentity.unreachable_at).where(
                    ContactIdentity.value == gone
                )
            ).one()
            return row[0], row[1]

        reason, when = await db.read(flagged)
        assert when is not None
        assert reason is not None
        assert reason.startswith("bounce")
    finally:
        await db.dispose()


async def test_malformed_mail_is_kept_raw_and_flagged_and_the_loop_goes_on(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        broken = (
            b"From: Broken Sender <broken@example.org>\r\nMessage-ID: <broken-1@example.org>\r\n"
            b'Content-Type: multipart/mixed; boundary="never-closed"\r\n'
            b"Content-Transfer-Encoding: base64\r\nDate: not a date at all\r\n\r\n"
            b"--never-closed\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n!!!not base64!!!\r\n"
        )
        senderless = b"Subject: nobody\r\nMessage-ID: <nobody-1@example.org>\r\n\r\nhello\r\n"
        await deliver(dovecot, broken, senderless, letter(9))
        reader = _reader(mailbox_for(dovecot), service, tmp_path)
        await _catch_up(reader, dovecot)
        assert reader.counts[Outcome.INGESTED] == 2
        assert reader.counts[Outcome.UNATTRIBUTED] == 1

        def stored(session: Session) -> list[tuple[str | None, str | None]]:
            rows = session.execute(
                select(Message.external_id, Message.raw_ref).order_by(Message.id)
            )
            return [(row[0], row[1]) for row in rows]

        rows = await db.read(stored)
        assert [external_id for external_id, _ in rows] == [
            "broken-1@example.org",
            "letter-9@example.org",
        ]
        store = FileStore(tmp_path / "media")
        for _, raw_ref in rows:
            assert raw_ref is not None
            assert store.path(raw_ref).exists()
        # The senderless mail is kept too, though no contact can be filed for it.
        kept = {p.read_bytes() for p in (tmp_path / "media" / "mail").rglob("*") if p.is_file()}
        assert senderless in kept
    finally:
        await db.dispose()


async def test_reconnects_with_growing_backoff_when_the_server_is_down(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    from dataclasses import replace

    from connectors.email.reader import Backoff
    from tests.integration.email.peers import free_port

    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        mailbox = mailbox_for(dovecot)
        down = replace(mailbox, imap=replace(mailbox.imap, port=free_port()))
        delays: list[float] = []

        async def sleep(seconds: float) -> None:
            delays.append(seconds)
            if len(delays) == 4:
                raise asyncio.CancelledError

        intake = MailIntake(down, service, FileStore(tmp_path))
        reader = MailboxReader(down, service, intake, Backoff(first=1, longest=5), sleep=sleep)
        with contextlib.suppress(asyncio.CancelledError):
            await reader.run_forever()
        for delay, base in zip(delays, [1, 2, 4, 5], strict=True):
            assert 0.8 * base <= delay <= 1.2 * base  # doubling up to the longest, jittered
    finally:
        await db.dispose()


async def test_attachments_are_stored_within_the_size_limits(
    dovecot: Dovecot, sqlite_url: str, clock: ManualClock, tmp_path: Path
) -> None:
    from dataclasses import replace
    from email.message import EmailMessage

    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        mail = EmailMessage()
        mail["From"] = "Client <client@example.org>"
        mail["Subject"] = "Реквизиты"
        mail["Message-ID"] = "<files-1@example.org>"
        mail.set_content("Реквизиты во вложении")
        mail.add_alternative("<p>Реквизиты <b>во вложении</b><script>x()</script></p>", "html")
        mail.add_attachment(
            b"%PDF-1.4 small", maintype="application", subtype="pdf", filename="a.pdf"
        )
        mail.add_attachment(b"x" * 5000, maintype="application", subtype="zip", filename="big.zip")
        await deliver(dovecot, mail.as_bytes())
        mailbox = replace(mailbox_for(dovecot), max_attachment_bytes=1000)
        await _catch_up(_reader(mailbox, service, tmp_path), dovecot)

        def attachments(session: Session) -> list[dict[str, object]]:
            return list(session.scalars(select(Message.attachments)).one())

        files = {str(a["name"]): a for a in await db.read(attachments)}
        store = FileStore(tmp_path / "media")
        assert files["a.pdf"]["size"] == 14
        assert await store.get(str(files["a.pdf"]["storage_key"])) == b"%PDF-1.4 small"
        assert files["big.zip"]["storage_key"] is None  # over the limit: named, not kept
        html = await store.get(str(files["message.html"]["storage_key"]))
        assert b"<b>" in html
        assert b"script" not in html
    finally:
        await db.dispose()


async def test_idle_is_renewed_and_still_hears_new_mail(
    dovecot: Dovecot,
    sqlite_url: str,
    clock: ManualClock,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from dataclasses import replace

    caplog.set_level("DEBUG", logger="aioimaplib.aioimaplib")
    db = Database(sqlite_url)
    try:
        service = await _service(db, clock)
        mailbox = replace(mailbox_for(dovecot), idle_seconds=0.3)
        reader = _reader(mailbox, service, tmp_path)
        task = asyncio.create_task(reader.run_forever())
        try:

            async def renewed() -> bool:
                return caplog.text.count(" IDLE\\r\\n") >= 3

            await wait_until(renewed, 20)
            await deliver(dovecot, letter(1))

            async def heard() -> bool:
                return await count_rows(db, Message) == 1

            await wait_until(heard, 20)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        assert USERS[SALES] not in caplog.text  # aioimaplib's own log scrubs the password
    finally:
        await db.dispose()
