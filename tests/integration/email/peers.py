"""Real peers for the email tests and bench: Dovecot (IMAP) and aiosmtpd (SMTP).

Dovecot refuses root processes: the recipe from testbed.md runs it with its own
``dovecot``/``dovenull`` users in a temporary folder, on a free loopback port.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from email.message import EmailMessage as Mail
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
USERS = {"sales@example.test": "s3cret-imap", "client@example.org": "client-pw"}
SMTP_PASSWORD = "smtp-secret"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dovecot_available() -> bool:
    return Path(DOVECOT).exists()


_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/mail/%u
}}
mail_location = maildir:~/Maildir
mail_fsync = never
namespace inbox {{
  inbox = yes
  mailbox Sent {{
    special_use = \\Sent
    auto = create
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
first_valid_uid = 100
default_internal_user = dovenull
default_login_user = dovenull
"""


@dataclass(frozen=True)
class Certificate:
    """A server certificate and key (PEM files) and the CA file that vouches for them."""

    cert: Path
    key: Path
    ca: Path


@dataclass
class Dovecot:
    """With ``tls``, STARTTLS on ``port`` and implicit TLS on ``tls_port``."""

    root: Path
    port: int = field(default_factory=free_port)
    tls: Certificate | None = None
    tls_port: int = field(default_factory=free_port)

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        for sub in ("run", "state", "mail"):
            (self.root / sub).mkdir(exist_ok=True)
        users = "".join(f"{u}:{{PLAIN}}{p}\n" for u, p in USERS.items())
        (self.root / "users").write_text(users)
        ssl = (
            f"ssl = yes\nssl_cert = <{self.tls.cert}\nssl_key = <{self.tls.key}"
            if self.tls
            else "ssl = no"
        )
        config = _CONFIG.format(d=self.root, port=self.port, tls_port=self.tls_port, ssl=ssl)
        (self.root / "dovecot.conf").write_text(config)
        subprocess.run(["chown", "-R", "dovecot:dovecot", str(self.root / "mail")], check=True)
        subprocess.run([DOVECOT, "-c", str(self.root / "dovecot.conf")], check=True, timeout=30)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen: {self.log()}")

    def stop(self, wait: bool = True) -> None:
        """SIGTERM to the master; it takes Dovecot a few seconds to wind down its children."""
        pid_file = self.root / "run" / "master.pid"
        if not pid_file.exists():
            return
        pid = int(pid_file.read_text().strip())
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if wait:
            self.wait_stopped(pid)

    def wait_stopped(self, pid: int | None = None) -> None:
        if pid is None:
            pid_file = self.root / "run" / "master.pid"
            if not pid_file.exists():
                return
            pid = int(pid_file.read_text().strip())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def reset_uidvalidity(self, user: str, folder: str = "INBOX") -> None:
        """What a server migration does: the folder's UIDs start over."""
        maildir = self.root / "mail" / user / "Maildir"
        if folder != "INBOX":
            maildir = maildir / f".{folder}"
        for name in (
            "dovecot-uidlist",
            "dovecot.index",
            "dovecot.index.cache",
            "dovecot.index.log",
        ):
            (maildir / name).unlink(missing_ok=True)


class _Capture:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, Mail]] = []
        self.fail_next: list[str] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.fail_next:
            return self.fail_next.pop(0)
        data = envelope.content if isinstance(envelope.content, bytes) else b""
        mail = BytesParser(policy=default_policy).parsebytes(data)
        assert isinstance(mail, Mail)
        self.messages.append((envelope, mail))
        self.arrived.set()
        return "250 OK"


class SmtpCapture:
    """aiosmtpd on a free loopback port, keeping every mail it accepts."""

    def __init__(self, tls: ssl.SSLContext | None = None, *, implicit: bool = False) -> None:
        """With ``tls``: STARTTLS, or TLS from the first byte when ``implicit``."""
        self.handler = _Capture()
        self.port = free_port()
        self.logins: list[str] = []
        self._controller: Any = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            auth_require_tls=tls is not None and not implicit,
            authenticator=self._authenticate,
            tls_context=None if implicit else tls,
            require_starttls=tls is not None and not implicit,
            ssl_context=tls if implicit else None,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword) or data.password != SMTP_PASSWORD.encode():
            return AuthResult(success=False, handled=False)
        self.logins.append(data.login.decode())
        return AuthResult(success=True)

    @property
    def messages(self) -> list[tuple[Envelope, Mail]]:
        return self.handler.messages

    def fail_next(self, *replies: str) -> None:
        self.handler.fail_next.extend(replies)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()
