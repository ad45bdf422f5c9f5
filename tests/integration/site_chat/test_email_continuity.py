"""A visitor who left goes on by email, against the real peers: the widget's mailbox is a
real Dovecot (IMAP) and aiosmtpd (SMTP), as in the email tests.

A manager's reply that the visitor has neither read nor come back for within
``email_after_minutes`` goes out once, by mail, to the address the visitor typed; the
client's answer to that mail threads back into the same (site chat) conversation, and
the widget still shows only its own messages.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy.orm import Session

from connectors.site_chat.config import parse_site_chat
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.keys import DATABASE
from hub.settings import Settings
from hub.site_chat.follow_up import FollowUps
from tests.factories import WHEN
from tests.integration.email.mail import SALES, deliver, wait_until
from tests.integration.email.peers import (
    IN_CI,
    SMTP_PASSWORD,
    USERS,
    Dovecot,
    SmtpCapture,
    dovecot_available,
)
from tests.integration.site_chat.conftest import (
    PAGE,
    Client,
    ClientFactory,
    next_of,
    say,
    widget_table,
)

VISITOR_EMAIL = "client@example.test"
AFTER_MINUTES = 10
_STOPPING: list[Dovecot] = []


@dataclass
class Hub:
    """The hub under test, and the Authorization header of a manager who sees all."""

    client: Client
    manager: dict[str, str]

    async def visit(
        self, token: str | None = None
    ) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
        """A visitor's socket after its welcome."""
        socket = await self.client.ws_connect("/widget/v1/socket")
        hello = {"type": "hello", "key": "cloud", "token": token, "page": PAGE, "user": None}
        await socket.send_json(hello)
        welcome: dict[str, Any] = await socket.receive_json(timeout=10)
        assert welcome["type"] == "welcome", welcome
        return socket, welcome


@pytest.fixture(scope="module", autouse=True)
def _dovecots_wound_down() -> Iterator[None]:
    """Each test's Dovecot winds down in the background; the module waits for all."""
    yield
    for server in _STOPPING:
        server.wait_stopped()
        shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_available():
        if IN_CI:
            pytest.fail("Dovecot is needed in CI: ./dev test installs dovecot-imapd")
        pytest.skip("Dovecot is not installed: apt-get install dovecot-imapd (or ./dev test)")
    # Not under pytest's tmp folders: those are 0700 and Dovecot's users must enter.
    server = Dovecot(Path(tempfile.mkdtemp(prefix="omnihub-dovecot-")))
    _STOPPING.append(server)
    server.start()
    yield server
    server.stop(wait=False)


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    server = SmtpCapture()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _site_chat() -> dict[str, Any]:
    table = widget_table(email_mailbox="sales", email_after_minutes=AFTER_MINUTES)
    return {**table, "follow_up_poll_seconds": 0.05}


def _email(dovecot: Dovecot, smtp: SmtpCapture, media: Path) -> dict[str, Any]:
    mailbox = {
        "key": "sales",
        "address": SALES,
        "display_name": "Cloud Example",
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
    return {"media_dir": str(media), "mailboxes": [mailbox]}


@pytest.fixture
async def hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    dovecot: Dovecot,
    smtp: SmtpCapture,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> Hub:
    """A hub with the widget and its mailbox, as in production (``create_app``)."""

    def manager(session: Session) -> str:
        journal = Journal("test", WHEN)
        head = create_manager(
            session,
            journal,
            email="head@example.test",
            name="Anna Head",
            role=Role.HEAD,
            password="head-password",
        )
        token = create_api_token(session, journal, "head", head.id)[1]
        journal.flush(session)
        return token

    token = await db.write(manager)
    settings = Settings(
        database_url=database_url,
        session_cookie_secure=False,
        media_dir=str(tmp_path / "media"),
        channels={
            "site_chat": _site_chat(),
            "email": _email(dovecot, smtp, tmp_path / "mail-media"),
        },
        outbox_poll_seconds=0.05,
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    return Hub(client, {"Authorization": f"Bearer {token}"})


async def _get(hub: Hub, path: str) -> dict[str, Any]:
    response = await hub.client.get(path, headers=hub.manager)
    assert response.status == 200, await response.text()
    found: dict[str, Any] = await response.json()
    return found


async def _conversation(hub: Hub) -> dict[str, Any]:
    (only,) = (await _get(hub, "/api/v1/conversations"))["items"]
    return await _get(hub, f"/api/v1/conversations/{only['id']}")


async def _timeline(hub: Hub, contact_id: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await _get(hub, f"/api/v1/contacts/{contact_id}/timeline"))[
        "items"
    ]
    return items


async def _mails_of(hub: Hub, contact_id: int, direction: str) -> list[dict[str, Any]]:
    return [
        m
        for m in await _timeline(hub, contact_id)
        if m["channel"] == "email" and m["direction"] == direction
    ]


async def _reply(hub: Hub, conversation_id: int, text: str) -> None:
    response = await hub.client.post(
        f"/api/v1/conversations/{conversation_id}/messages",
        json={"text": text},
        headers=hub.manager,
    )
    assert response.status == 202, await response.text()


async def _pushed_reply(socket: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The manager's reply as the visitor's socket hears it live."""
    pushed = await next_of(socket, "message")
    while pushed["message"]["from"] != "manager":
        pushed = await next_of(socket, "message")
    message: dict[str, Any] = pushed["message"]
    return message


async def _pass_finds_nothing(hub: Hub, clock: ManualClock, contact_id: int, mails: int) -> None:
    """A follow-up pass (as the hub's loop runs it) finds nothing due, and the hub mails
    nothing more: still ``mails`` outbound mails in the conversation."""
    follow_ups = FollowUps(
        hub.client.app[DATABASE], clock, parse_site_chat(_site_chat()).widgets, poll=1.0
    )
    assert await follow_ups.run_once() == 0
    await asyncio.sleep(0.3)  # a few rounds of the hub's own loop (every 0.05 s)
    assert len(await _mails_of(hub, contact_id, "out")) == mails


async def test_an_unseen_reply_goes_out_by_mail_once_and_the_answer_threads_back(
    hub: Hub, clock: ManualClock, dovecot: Dovecot, smtp: SmtpCapture
) -> None:
    # A visitor writes and leaves their email in the pre-chat form.
    socket, welcome = await hub.visit()
    token = welcome["token"]
    ack = await say(socket, "c-1", "Need a PostgreSQL cluster", contact={"email": VISITOR_EMAIL})
    assert ack["type"] == "ack", ack
    conversation = await _conversation(hub)
    conversation_id, contact_id = conversation["id"], conversation["contact_id"]
    assert conversation["channel"] == "site_chat"

    # A minute later a manager answers; the open socket hears it, unread; the visitor leaves.
    clock.advance(timedelta(minutes=1))
    reply_text = "Hello! A 3-node cluster with 16 GB each costs 900 EUR a month."
    await _reply(hub, conversation_id, reply_text)
    assert (await _pushed_reply(socket))["text"] == reply_text
    await socket.close()

    # Before email_after_minutes nothing is due.
    clock.advance(timedelta(minutes=AFTER_MINUTES - 1))
    await _pass_finds_nothing(hub, clock, contact_id, mails=0)
    assert smtp.messages == []

    # 11 minutes after the reply, the hub's own loop mails it.
    clock.advance(timedelta(minutes=2))

    async def mailed() -> bool:
        return bool(smtp.messages)

    await wait_until(mailed)

    async def sent() -> bool:
        return [m["delivery_status"] for m in await _mails_of(hub, contact_id, "out")] == ["sent"]

    await wait_until(sent)
    ((envelope, mail),) = smtp.messages
    assert envelope.rcpt_tos == [VISITOR_EMAIL]
    assert [a.addr_spec for a in mail["To"].addresses] == [VISITOR_EMAIL]
    assert mail["Cc"] is None
    assert mail["Bcc"] is None
    assert mail["From"].addresses[0].addr_spec == SALES
    # a first mail to this client: a subject of its own, with the conversation's token
    assert str(mail["Subject"]).startswith("Cloud Example: you have a new reply in the chat [#C")
    body = mail.get_body(("plain",))
    assert body is not None
    assert reply_text in body.get_content()
    mailed_id = str(mail["Message-ID"]).strip().strip("<>")

    # The inbox shows it as an outbound email message of the same conversation.
    (outbound,) = await _mails_of(hub, contact_id, "out")
    assert outbound["conversation_id"] == conversation_id
    assert outbound["external_id"] == mailed_id
    assert reply_text in outbound["text"]
    detail = await _get(hub, f"/api/v1/conversations/{conversation_id}")
    assert outbound["id"] in [m["id"] for m in detail["messages"]["items"]]

    # Once only: time goes on, the passes find nothing more to mail.
    clock.advance(timedelta(minutes=30))
    await _pass_finds_nothing(hub, clock, contact_id, mails=1)
    assert len(smtp.messages) == 1

    # The client answers the mail from their mail program; the hub's IMAP reader takes it.
    answer = EmailMessage(policy=default_policy)
    answer["From"] = f"Client <{VISITOR_EMAIL}>"
    answer["To"] = SALES
    answer["Subject"] = f"Re: {mail['Subject']}"
    answer["Message-ID"] = "<answer-1@example.test>"
    answer["In-Reply-To"] = f"<{mailed_id}>"
    answer["References"] = f"<{mailed_id}>"
    answer.set_content(f"Three nodes are fine, send the invoice.\n\n> {reply_text}\n")
    await deliver(dovecot, answer.as_bytes())

    async def answered() -> bool:
        return bool(await _mails_of(hub, contact_id, "in"))

    await wait_until(answered)
    (inbound,) = await _mails_of(hub, contact_id, "in")
    assert inbound["conversation_id"] == conversation_id
    assert inbound["external_id"] == "answer-1@example.test"
    assert "send the invoice" in inbound["text"]
    (still_one,) = (await _get(hub, "/api/v1/conversations"))["items"]
    assert still_one["id"] == conversation_id
    detail = await _get(hub, f"/api/v1/conversations/{conversation_id}")
    assert inbound["id"] in [m["id"] for m in detail["messages"]["items"]]

    # The widget still shows only its own messages: not the mail, nor the answer.
    again, resumed = await hub.visit(token=token)
    await again.close()
    assert [(m["from"], m["text"]) for m in resumed["messages"]] == [
        ("visitor", "Need a PostgreSQL cluster"),
        ("manager", reply_text),
    ]
    shown = {m["id"] for m in resumed["messages"]}
    assert outbound["id"] not in shown
    assert inbound["id"] not in shown


async def test_a_visitor_who_read_the_reply_gets_no_mail(
    hub: Hub, clock: ManualClock, smtp: SmtpCapture
) -> None:
    socket, _ = await hub.visit()
    await say(socket, "c-1", "Is there a free tier?", contact={"email": VISITOR_EMAIL})
    conversation = await _conversation(hub)
    clock.advance(timedelta(minutes=1))
    await _reply(hub, conversation["id"], "Yes, 1 GB for free.")
    reply = await _pushed_reply(socket)

    async def delivered() -> bool:
        detail = await _get(hub, f"/api/v1/conversations/{conversation['id']}")
        statuses = {m["id"]: m["delivery_status"] for m in detail["messages"]["items"]}
        return statuses.get(reply["id"]) == "sent"

    await wait_until(delivered)  # the relay marks the reply sent; then it can be read
    await socket.send_json({"type": "read", "up_to": reply["id"]})
    await socket.send_json({"type": "ping"})
    await next_of(socket, "pong")
    await socket.close()
    detail = await _get(hub, f"/api/v1/conversations/{conversation['id']}")
    (read,) = [m for m in detail["messages"]["items"] if m["id"] == reply["id"]]
    assert read["delivery_status"] == "read"

    clock.advance(timedelta(minutes=AFTER_MINUTES + 1))
    await _pass_finds_nothing(hub, clock, conversation["contact_id"], mails=0)
    assert smtp.messages == []


async def test_a_visitor_who_left_no_email_gets_no_mail(
    hub: Hub, clock: ManualClock, smtp: SmtpCapture
) -> None:
    socket, _ = await hub.visit()
    await say(socket, "c-1", "Do you have Kafka?", contact={"name": "Ivan"})
    conversation = await _conversation(hub)
    clock.advance(timedelta(minutes=1))
    await _reply(hub, conversation["id"], "We do, from 3 brokers.")
    await _pushed_reply(socket)
    await socket.close()

    clock.advance(timedelta(minutes=AFTER_MINUTES + 1))
    await _pass_finds_nothing(hub, clock, conversation["contact_id"], mails=0)
    assert smtp.messages == []
