"""Builders of the mail a client's program would send, and IMAP helpers for tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from connectors.email import imap
from connectors.email.config import ServerConfig
from crm_core.contracts import IdentityRef, OutboundMessage
from crm_core.enums import Channel, IdentityKind
from tests.integration.email.peers import USERS, Dovecot

SALES = "sales@example.test"
SENT_AT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)


def letter(
    n: int,
    *,
    sender: str | None = None,
    name: str = "Клиент",
    subject: str | None = None,
    text: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    mail = EmailMessage()
    mail["From"] = f"{name} <{sender or f'client{n}@example.org'}>"
    mail["To"] = SALES
    mail["Subject"] = subject if subject is not None else f"Вопрос №{n}"
    mail["Message-ID"] = f"<letter-{n}@example.org>"
    mail["Date"] = format_datetime(SENT_AT)
    for key, value in (headers or {}).items():
        mail[key] = value
    mail.set_content(text if text is not None else f"Сколько стоит тариф {n}?")
    return mail.as_bytes()


def manager_reply(**extra: Any) -> OutboundMessage:
    """A manager's reply to client@example.org from the sales mailbox."""
    return OutboundMessage(
        message_id=7,
        conversation_id=3,
        channel=Channel.EMAIL,
        channel_account="sales",
        recipients=(IdentityRef(IdentityKind.EMAIL, "client@example.org"),),
        text="Здравствуйте!",
        **extra,
    )


def server(dovecot: Dovecot, user: str = SALES) -> ServerConfig:
    return ServerConfig("127.0.0.1", dovecot.port, "none", user, USERS[user])


async def deliver(dovecot: Dovecot, *letters: bytes, folder: str = "INBOX") -> None:
    """What the client's mail server does: the letters land in the sales mailbox."""
    async with imap.session(server(dovecot)) as client:
        for data in letters:
            await imap.append(client, data, folder)


async def folder_mail(dovecot: Dovecot, folder: str) -> list[bytes]:
    async with imap.session(server(dovecot)) as client:
        await imap.select(client, folder)
        return list((await imap.fetch(client, await imap.uids_after(client, 0))).values())


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float = 30.0) -> None:
    """Wait for a real peer (not a business timer): polls ``check`` until it holds."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        await asyncio.sleep(0.05)
