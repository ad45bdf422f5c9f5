"""Private PostgreSQL and Redis servers for fault tests, in a temporary folder each.

The machine's own servers (127.0.0.1:5432 and :6379) are shared with other tests and must
never be stopped; a test that restarts its database or Redis starts its own here (see
``/work/shared/testbed.md``): a PostgreSQL cluster made with ``initdb`` (run as the
``postgres`` user when the tests run as root: PostgreSQL refuses root) and a
``redis-server`` child process that keeps nothing on disk. Both listen on 127.0.0.1 on a
free port, are ready when the fixture yields, and are stopped and removed at teardown
whatever happened. A missing binary fails in CI and skips elsewhere, saying what to install.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.integration.test_cli import _free_port

REDIS_SERVER = os.environ.get("OMNIHUB_TEST_REDIS_SERVER") or shutil.which("redis-server")


def _pg_bin() -> Path | None:
    configured = os.environ.get("OMNIHUB_TEST_PG_BIN")
    if configured:
        return Path(configured)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


def _missing(what: str, install: str) -> None:
    message = f"{what} not found; install {install} (Debian) for the fault tests"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _wait_port(port: int, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} does not listen on {port} after {seconds} s"
                ) from None
            time.sleep(0.05)


class PrivateRedis:
    """``redis-server`` as a child process on a fixed port: kill it, start it again."""

    def __init__(self, binary: str, folder: Path) -> None:
        self.binary = binary
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        # the folder is private: the log goes there, nothing else is written (no RDB/AOF)
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                "--daemonize",
                "no",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while not self.ping():
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited: {self.log()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server not ready in 15 s: {self.log()}")
            time.sleep(0.05)

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """``SIGKILL``: the server is gone at once, with everything it held."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # no save configured: it just exits
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        path = self.folder / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"


class PrivatePostgres:
    """A PostgreSQL cluster of its own (trust auth, user ``postgres``, no fsync)."""

    def __init__(self, bin_dir: Path, folder: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = folder
        self.data = folder / "data"
        self.logfile = folder / "postgres.log"
        self.port = _free_port()
        self._as_postgres = os.geteuid() == 0  # initdb and postgres refuse to run as root

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            output = done.stdout.decode(errors="replace")
            raise AssertionError(
                f"{' '.join(args)} failed ({done.returncode}): {output}\n{self.log()}"
            )

    def init(self) -> None:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip

    def _options(self) -> str:
        return (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c full_page_writes=off -c max_connections=100"
        )

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.logfile),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        _wait_port(self.port, 30, "PostgreSQL")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, mode: str = "fast") -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-o", self._options(), "-l", str(self.logfile),
            "-m", mode, "-w", "-t", "60", "restart",
        )  # fmt: skip
        _wait_port(self.port, 30, "PostgreSQL")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.logfile.read_text(errors="replace")[-3000:]
        return "(no log)"


def _private_folder(prefix: str, owner: str | None) -> Path:
    # Not under pytest's tmp_path: its parents are 0700 root, closed to the postgres user.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    if owner is not None:
        shutil.chown(folder, owner, owner)
    return folder


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A running redis-server of this test's own (``.kill()``/``.start()`` to restart)."""
    if REDIS_SERVER is None or not os.access(REDIS_SERVER, os.X_OK):
        _missing("redis-server", "redis-server")
    assert REDIS_SERVER is not None
    folder = _private_folder("omnihub-redis-", None)
    server = PrivateRedis(REDIS_SERVER, folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running PostgreSQL cluster of this test's own (``.stop(mode)``, ``.start()``)."""
    bin_dir = _pg_bin()
    if bin_dir is None or not (bin_dir / "initdb").exists() or not (bin_dir / "pg_ctl").exists():
        _missing("PostgreSQL server binaries (initdb, pg_ctl)", "postgresql")
    assert bin_dir is not None
    as_root = os.geteuid() == 0
    if as_root and shutil.which("runuser") is None:
        _missing("runuser (to run PostgreSQL as the postgres user)", "util-linux")
    folder = _private_folder("omnihub-pg-", "postgres" if as_root else None)
    server = PrivatePostgres(bin_dir, folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with contextlib.suppress(Exception):
                server.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)
