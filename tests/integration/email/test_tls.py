"""Mail over TLS against the real peers: IMAP with TLS from the first byte and with
STARTTLS (Dovecot), SMTP likewise (aiosmtpd). Each checks the server's certificate
against the CA the mailbox is told to trust, and refuses a server it cannot verify."""

from __future__ import annotations

import ssl
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.email import imap
from connectors.email.config import MailboxConfig, Security, ServerConfig
from connectors.email.sender import EmailSender
from connectors.store import FileStore
from crm_core.contracts import SendError
from tests.integration.email.conftest import SALES, mailbox_for
from tests.integration.email.mail import deliver, letter, manager_reply
from tests.integration.email.peers import (
    SMTP_PASSWORD,
    USERS,
    Certificate,
    Dovecot,
    SmtpCapture,
)


def _imap(dovecot: Dovecot, security: Security, ca: Path | None) -> ServerConfig:
    port = dovecot.tls_port if security == "tls" else dovecot.port
    return ServerConfig(
        "127.0.0.1", port, security, SALES, USERS[SALES], ca_file=str(ca) if ca else None
    )


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_imap_reads_over_tls_and_verifies_the_server(
    tls_dovecot: Dovecot, certificate: Certificate, security: Security
) -> None:
    await deliver(tls_dovecot, letter(1))
    async with imap.session(_imap(tls_dovecot, security, certificate.ca)) as client:
        assert client.protocol.transport.get_extra_info("ssl_object") is not None
        await imap.select(client, "INBOX")
        (mail,) = (await imap.fetch(client, await imap.uids_after(client, 0))).values()
    assert b"<letter-1@example.org>" in mail
    # Without the CA that issued the server's certificate, nothing is read.
    with pytest.raises(imap.ImapError, match="CERTIFICATE_VERIFY_FAILED"):
        async with imap.session(_imap(tls_dovecot, security, None), wait=10):
            pass


def _server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


@pytest.mark.parametrize("security", ["tls", "starttls"])
async def test_smtp_sends_over_tls_and_verifies_the_server(
    dovecot: Dovecot, certificate: Certificate, tmp_path: Path, security: Security
) -> None:
    smtp = SmtpCapture(_server_context(certificate), implicit=security == "tls")
    smtp.start()
    try:
        plain = mailbox_for(dovecot, smtp.port)
        outgoing = ServerConfig(
            "127.0.0.1", smtp.port, security, SALES, SMTP_PASSWORD, ca_file=str(certificate.ca)
        )
        mailbox: MailboxConfig = replace(plain, smtp=outgoing, sent_folder=None)
        await EmailSender({"sales": mailbox}, FileStore(tmp_path)).send(manager_reply())
        ((envelope, _mail),) = smtp.messages
        assert envelope.rcpt_tos == ["client@example.org"]
        assert smtp.logins == [SALES]  # the password went over the encrypted line
        untrusting = replace(mailbox, smtp=replace(outgoing, ca_file=None))
        with pytest.raises(SendError):
            await EmailSender({"sales": untrusting}, FileStore(tmp_path)).send(manager_reply())
        assert len(smtp.messages) == 1
    finally:
        smtp.stop()
