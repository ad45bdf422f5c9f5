"""Two ``omnihub worker`` processes with one mailbox against a real Dovecot: exactly one of them
holds an IMAP session at any time (a counting TCP proxy names the process behind each
connection), and after ``kill -9`` of that one the other logs in within the lease time."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration.email.peers import IN_CI, USERS, Dovecot, dovecot_available
from tests.integration.scaled.cluster import Cluster
from tests.integration.test_cli import _free_port

LEASE_SECONDS = 2.0
SALES = "sales@example.test"

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(90)]


def _socket_owner(client_port: int, pids: list[int]) -> int | None:
    """The process (among ``pids``) holding the loopback socket whose local port is
    ``client_port``: /proc/net/tcp gives the socket's inode, /proc/<pid>/fd its owner."""
    inode = ""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                cols = row.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == client_port and cols[9] != "0":
                    inode = cols[9]
    if not inode:
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return pid
                except OSError:
                    continue
        except OSError:
            continue
    return None


@dataclass
class ImapSession:
    pid: int | None
    opened: float
    closed: float | None = None
    logged_in: float | None = None


@dataclass
class CountingProxy:
    """Forwards IMAP connections to Dovecot, noting who opened each and when it logged in."""

    upstream: int
    pids: Callable[[], list[int]]
    port: int = field(default_factory=_free_port)
    sessions: list[ImapSession] = field(default_factory=list)
    most_open: int = 0  # the most sessions open at once, seen at each accept
    serving: set[asyncio.Task[None]] = field(default_factory=set)

    def open_now(self) -> list[ImapSession]:
        return [s for s in self.sessions if s.closed is None]

    def logins_since(self, since: float) -> list[ImapSession]:
        return [s for s in self.sessions if s.logged_in is not None and s.logged_in >= since]

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        session: ImapSession | None,
    ) -> None:
        try:
            while data := await reader.read(65536):
                if session is not None and session.logged_in is None:
                    upper = data.upper()
                    if b" LOGIN " in upper or b" AUTHENTICATE " in upper:
                        session.logged_in = time.monotonic()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.serving.add(task)
        task.add_done_callback(self.serving.discard)
        client_port = int(client_w.get_extra_info("peername")[1])
        session = ImapSession(_socket_owner(client_port, self.pids()), time.monotonic())
        self.sessions.append(session)
        self.most_open = max(self.most_open, len(self.open_now()))
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", self.upstream)
        except OSError:
            session.closed = time.monotonic()
            client_w.close()
            return
        upward = asyncio.ensure_future(self._pipe(client_r, server_w, session))
        downward = asyncio.ensure_future(self._pipe(server_r, client_w, None))
        try:
            # the client's side ends the session (a logout, a dropped line, a killed process)
            await asyncio.wait([upward, downward], return_when=asyncio.FIRST_COMPLETED)
        finally:
            session.closed = time.monotonic()
            for task in (upward, downward):
                task.cancel()
            server_w.close()
            client_w.close()

    async def start(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self, server: asyncio.Server) -> None:
        server.close()
        for task in list(self.serving):
            task.cancel()
        await asyncio.gather(*self.serving, return_exceptions=True)
        await server.wait_closed()


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    if not dovecot_available():
        if IN_CI:
            pytest.fail("Dovecot is needed in CI: ./dev test installs dovecot-imapd")
        pytest.skip("Dovecot is not installed: apt-get install dovecot-imapd (or ./dev test)")
    # Not under pytest's tmp folders: those are 0700 and Dovecot's users must enter.
    server = Dovecot(Path(tempfile.mkdtemp(prefix="omnihub-dovecot-")))
    server.start()
    yield server
    server.stop(wait=False)


@pytest.fixture
async def proxy(dovecot: Dovecot, cluster: Cluster) -> AsyncIterator[CountingProxy]:
    counting = CountingProxy(
        dovecot.port,
        lambda: [h.process.pid for h in cluster.started if h.process.poll() is None],
    )
    server = await counting.start()
    yield counting
    await counting.stop(server)


def _channels(port: int) -> str:
    mailbox = {
        "key": "sales",
        "address": SALES,
        "imap": {
            "host": "127.0.0.1",
            "port": port,
            "security": "none",
            "user": SALES,
            "password": USERS[SALES],
        },
        "smtp": {
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "user": SALES,
            "password": "x",
        },
    }
    return json.dumps({"email": {"mailboxes": [mailbox]}})


async def _eventually(check: Callable[[], bool], seconds: float, what: str) -> float:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {seconds} s: {what}")
        await asyncio.sleep(0.02)
    return time.monotonic()


async def test_one_worker_holds_the_imap_session_and_the_other_takes_over_after_kill_9(
    cluster: Cluster, proxy: CountingProxy
) -> None:
    cluster.env["OMNIHUB_LEASE_SECONDS"] = str(LEASE_SECONDS)
    cluster.env["OMNIHUB_CHANNELS"] = _channels(proxy.port)
    workers = [cluster.start("worker"), cluster.start("worker")]
    await cluster.ready(*workers)
    try:
        await _eventually(lambda: bool(proxy.logins_since(0)), 30, "a worker logs in over IMAP")
        # four lease times with both alive: one process logs in, one session is open at most
        await asyncio.sleep(LEASE_SECONDS * 4)
        assert all(w.process.poll() is None for w in workers)
        pids = {s.pid for s in proxy.sessions}
        assert None not in pids, proxy.sessions
        assert len(pids) == 1, proxy.sessions
        assert proxy.most_open == 1, proxy.sessions
        assert len(proxy.open_now()) == 1, proxy.sessions
        (owner_pid,) = pids
        owner = next(w for w in workers if w.process.pid == owner_pid)
        other = next(w for w in workers if w is not owner)

        os.kill(owner.process.pid, signal.SIGKILL)
        killed = time.monotonic()
        owner.process.wait(10)
        # the dead process's socket is closed by the kernel; the other one logs in
        taken = await _eventually(
            lambda: any(s.pid == other.process.pid for s in proxy.logins_since(killed)),
            LEASE_SECONDS * 4,
            "the other worker logs in",
        )
        takeover = taken - killed
        print(
            f"\nthe other worker logged in {takeover:.2f} s after the kill "
            f"(lease {LEASE_SECONDS} s)"
        )
        # the key expires within the lease time; a waiting worker tries every lease / 5;
        # then a connect and a login
        assert takeover <= LEASE_SECONDS * 1.2 + 1.0
        await asyncio.sleep(LEASE_SECONDS * 2)
        assert {s.pid for s in proxy.sessions if s.opened >= killed} == {other.process.pid}
        assert proxy.most_open == 1, proxy.sessions
        assert [s.pid for s in proxy.open_now()] == [other.process.pid]
        assert other.process.poll() is None
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{cluster.logs()}") from exc
