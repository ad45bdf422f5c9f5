"""The whole way through the hub: client → Dovecot → hub → manager's reply → aiosmtpd → client.

The app runs as in production (``create_app`` with ``[channels.email]``): its reader IDLEs
on the real Dovecot, its relay sends through aiosmtplib to aiosmtpd.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.email.sender import EmailSender
from connectors.store import FileStore
from crm_core.clock import ManualClock
from crm_core.contracts import (
    PermanentSendError,
    SendError,
)
from crm_core.db import Database
from crm_core.models import Contact, Deal, Message
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, api_token, count_rows
from tests.integration.email.conftest import mailbox_for
from tests.integration.email.mail import (
    SALES,
    deliver,
    folder_mail,
    letter,
    manager_reply,
    wait_until,
)
from tests.integration.email.peers import SMTP_PASSWORD, USERS, Dovecot, SmtpCapture

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def _settings(database_url: str, dovecot: Dovecot, smtp: SmtpCapture, media: Path) -> Settings:
    mailbox = {
        "key": "sales",
        "address": SALES,
        "display_name": "Отдел продаж",
        "imap": {
            "host": "127.0.0.1",
            "port": dovecot.port,
            "security": "none",
            "user": SALES,
            "password": USERS[SALES],
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "user": SALES,
            "password": SMTP_PASSWORD,
        },
    }
    return Settings(
        database_url=database_url,
        outbox_poll_seconds=0.05,
        channels={"email": {"media_dir": str(media), "mailboxes": [mailbox]}},
    )


async def _messages(db: Database) -> list[tuple[int, str, str | None, str]]:
    def work(session: Session) -> list[tuple[int, str, str | None, str]]:
        rows = session.execute(
            select(
                Message.conversation_id,
                Message.direction,
                Message.external_id,
                Message.delivery_status,
            ).order_by(Message.id)
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    return await db.read(work)


async def test_client_hub_manager_reply_client_threaded(
    database_url: str,
    db: Database,
    clock: ManualClock,
    dovecot: Dovecot,
    smtp: SmtpCapture,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> None:
    token = await api_token(db)
    await add_managers(db, 1)
    app = create_app(_settings(database_url, dovecot, smtp, tmp_path / "media"), clock=clock)
    client = await aiohttp_client(app)
    auth = {"Authorization": f"Bearer {token}"}

    # 1. The client writes; the hub's reader (IDLE) takes it in.
    await deliver(dovecot, letter(1, subject="Курс по PostgreSQL", text="Сколько стоит курс?"))

    async def arrived(count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return sum(1 for m in await _messages(db) if m[1] == "in") >= count

        return check

    await wait_until(await arrived(1))
    ((conversation_id, _, first_id, _),) = await _messages(db)
    assert first_id == "letter-1@example.org"

    # 2. The manager answers in the inbox; the outbox sends it by SMTP.
    response = await client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": "Добрый день! Курс стоит 30 000 ₽."},
        headers=auth,
    )
    assert response.status in {200, 201, 202}, await response.text()

    async def sent() -> bool:
        return any(m[1] == "out" and m[3] == "sent" for m in await _messages(db))

    await wait_until(sent)
    assert smtp.logins == [SALES]
    ((envelope, mail),) = smtp.messages
    assert envelope.rcpt_tos == ["client1@example.org"]
    assert mail["From"].addresses[0].addr_spec == SALES
    assert str(mail["Subject"]) == f"Re: Курс по PostgreSQL [#C{conversation_id}]"
    assert str(mail["In-Reply-To"]) == "<letter-1@example.org>"
    assert "<letter-1@example.org>" in str(mail["References"])
    reply_id = str(mail["Message-ID"]).strip("<>")
    outbound = [m for m in await _messages(db) if m[1] == "out"]
    assert outbound[0][2] == reply_id  # the receipt: our Message-ID, for threading

    # 3. The copy in Sent.
    (copy,) = await folder_mail(dovecot, "Sent")
    assert f"Message-ID: <{reply_id}>".encode() in copy

    # 4. The client answers our reply (a subject without the token): same conversation.
    answer = EmailMessage(policy=default_policy)
    answer["From"] = "Клиент <client1@example.org>"
    answer["To"] = SALES
    answer["Subject"] = "Re: Курс по PostgreSQL"
    answer["Message-ID"] = "<letter-2@example.org>"
    answer["In-Reply-To"] = f"<{reply_id}>"
    answer["References"] = f"<letter-1@example.org> <{reply_id}>"
    answer.set_content("Спасибо, беру!\n\n> Добрый день! Курс стоит 30 000 ₽.\n")
    # A different client quoting the same subject is not threaded by subject.
    stranger = letter(3, sender="other@example.org", subject="Re: Курс по PostgreSQL")
    await deliver(dovecot, answer.as_bytes(), stranger)
    await wait_until(await arrived(3))
    inbound = [m for m in await _messages(db) if m[1] == "in"]
    assert inbound[1][0] == conversation_id
    assert inbound[2][0] != conversation_id
    assert await count_rows(db, Contact) == 2
    assert await count_rows(db, Deal) == 2

    def texts(session: Session) -> list[str]:
        return list(session.scalars(select(Message.text).order_by(Message.id)))

    assert (await db.read(texts))[2] == "Re: Курс по PostgreSQL\n\nСпасибо, беру!"


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        ("451 4.7.1 Try again later", SendError),
        ("554 5.7.1 Message rejected", PermanentSendError),
    ],
)
async def test_smtp_temporary_and_permanent_errors(
    dovecot: Dovecot, smtp: SmtpCapture, tmp_path: Path, reply: str, error: type[Exception]
) -> None:
    mailbox = mailbox_for(dovecot, smtp.port)
    sender = EmailSender({"sales": mailbox}, FileStore(tmp_path))
    smtp.fail_next(reply)
    with pytest.raises(error) as raised:
        await sender.send(manager_reply())
    assert isinstance(raised.value, PermanentSendError) == (error is PermanentSendError)
    # The retry goes through, with the same Message-ID: one mail to the client's program.
    receipt = await sender.send(manager_reply())
    assert receipt.external_id == "omnihub.3.7@example.test"
    assert len(smtp.messages) == 1


async def test_unreachable_smtp_server_is_temporary(dovecot: Dovecot, tmp_path: Path) -> None:
    from tests.integration.email.peers import free_port

    sender = EmailSender({"sales": mailbox_for(dovecot, free_port())}, FileStore(tmp_path))
    with pytest.raises(SendError) as raised:
        await sender.send(manager_reply())
    assert not isinstance(raised.value, PermanentSendError)


async def test_attachments_go_out_and_secrets_stay_out_of_logs(
    dovecot: Dovecot,
    smtp: SmtpCapture,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    store = FileStore(tmp_path)
    key = await store.put(b"%PDF-1.4 invoice", "attachment")
    from crm_core.contracts import Attachment

    # A Sent folder that does not exist yet is created (APPEND answers TRYCREATE).
    mailbox = replace(mailbox_for(dovecot, smtp.port), sent_folder="Outbox")
    sender = EmailSender({"sales": mailbox}, store)
    await sender.send(
        manager_reply(attachments=(Attachment("счёт.pdf", "application/pdf", 16, storage_key=key),))
    )
    ((_, mail),) = smtp.messages
    (part,) = list(mail.iter_attachments())
    assert part.get_filename() == "счёт.pdf"
    assert part.get_content() == b"%PDF-1.4 invoice"
    (copy,) = await folder_mail(dovecot, "Outbox")
    assert b"omnihub.3.7@example.test" in copy
    assert USERS[SALES] not in caplog.text
    assert SMTP_PASSWORD not in caplog.text
