"""Dovecot and aiosmtpd, started per test on free loopback ports."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from connectors.email.config import MailboxConfig, ServerConfig
from tests.integration.email.peers import (
    IN_CI,
    SMTP_PASSWORD,
    USERS,
    Certificate,
    Dovecot,
    SmtpCapture,
    dovecot_available,
)

SALES = "sales@example.test"


_STOPPING: list[Dovecot] = []


@pytest.fixture(scope="session", autouse=True)
def _dovecots_wound_down() -> Iterator[None]:
    """Each test's Dovecot winds down in the background; the session waits for all."""
    yield
    for server in _STOPPING:
        server.wait_stopped()
        shutil.rmtree(server.root, ignore_errors=True)


def _dovecot(tls: Certificate | None = None) -> Iterator[Dovecot]:
    if not dovecot_available():
        if IN_CI:
            pytest.fail("Dovecot is needed in CI: ./dev test installs dovecot-imapd")
        pytest.skip("Dovecot is not installed: apt-get install dovecot-imapd (or ./dev test)")
    # Not under pytest's tmp folders: those are 0700 and Dovecot's users must enter.
    root = Path(tempfile.mkdtemp(prefix="omnihub-dovecot-"))
    server = Dovecot(root, tls=tls)
    _STOPPING.append(server)
    server.start()
    yield server
    server.stop(wait=False)


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    yield from _dovecot()


@pytest.fixture(scope="session")
def certificate() -> Iterator[Certificate]:
    """A test CA and a certificate it issued for 127.0.0.1 and localhost."""
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    folder = Path(tempfile.mkdtemp(prefix="omnihub-tls-"))
    made = Certificate(folder / "server.pem", folder / "server.key", folder / "ca.pem")
    made.cert.write_bytes(b"".join(blob.bytes() for blob in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(made.key))
    ca.cert_pem.write_to_path(str(made.ca))
    yield made
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def tls_dovecot(certificate: Certificate) -> Iterator[Dovecot]:
    """Dovecot offering STARTTLS on ``port`` and TLS from the first byte on ``tls_port``."""
    yield from _dovecot(certificate)


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    server = SmtpCapture()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mailbox_for(dovecot: Dovecot, smtp_port: int = 1, batch_size: int = 200) -> MailboxConfig:
    imap = ServerConfig("127.0.0.1", dovecot.port, "none", SALES, USERS[SALES])
    outgoing = ServerConfig("127.0.0.1", smtp_port, "none", SALES, SMTP_PASSWORD)
    return MailboxConfig(
        key="sales",
        address=SALES,
        imap=imap,
        smtp=outgoing,
        poll_seconds=0.2,
        batch_size=batch_size,
    )


def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "media"
