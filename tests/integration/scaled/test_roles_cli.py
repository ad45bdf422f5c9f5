"""Which command runs where: ``web``/``worker`` need PostgreSQL and Redis; SQLite serves one
hub process, and a second one on the same file refuses to start."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_cli import OMNIHUB, ROOT, _free_port

pytestmark = pytest.mark.timeout(90)
NEEDS = "needs PostgreSQL (database_url) and Redis (redis_url)"


def _env(folder: Path, **settings: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMNIHUB_DATABASE_URL": f"sqlite:///{folder / 'hub.sqlite3'}",
        **{f"OMNIHUB_{k.upper()}": v for k, v in settings.items()},
    }


def _omnihub(folder: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNIHUB, *args], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("command", ["web", "worker"])
def test_scaled_roles_refuse_sqlite(tmp_path: Path, command: str) -> None:
    done = _omnihub(tmp_path, _env(tmp_path, redis_url="redis://127.0.0.1:6379/0"), command)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"omnihub: `omnihub {command}` {NEEDS}; with SQLite use `omnihub run`, one process"
    ]


@pytest.mark.parametrize("command", ["web", "worker"])
def test_scaled_roles_refuse_to_start_without_redis(tmp_path: Path, command: str) -> None:
    env = _env(tmp_path, database_url="postgresql://postgres@127.0.0.1:5432/postgres")
    done = _omnihub(tmp_path, env, command)
    assert done.returncode == 2
    assert NEEDS in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/healthz"
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (urllib.error.URLError, OSError):
        return False


def test_a_second_hub_on_one_sqlite_file_refuses_to_start(tmp_path: Path) -> None:
    env = _env(tmp_path)
    port = _free_port()
    first = subprocess.Popen(
        [*OMNIHUB, "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            assert first.poll() is None, "the first hub did not start"
            assert time.monotonic() < deadline, "the first hub did not answer /healthz"
            time.sleep(0.1)
        second = _omnihub(tmp_path, env, "run", "--port", str(_free_port()))
        assert second.returncode == 2
        database = tmp_path / "hub.sqlite3"
        assert second.stderr.strip().splitlines() == [
            f"omnihub: another hub is running on {database} (it holds {database}.lock); "
            "SQLite serves one process: for several, use PostgreSQL and Redis "
            "(omnihub web / worker)"
        ]
        # admin commands still work beside the running hub
        made = _omnihub(tmp_path, env, "create-token", "--name", "beside")
        assert made.returncode == 0, made.stderr
        assert _healthy(port)
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(20)
    # the lock goes with the hub: the next one starts
    port = _free_port()
    again = subprocess.Popen(
        [*OMNIHUB, "run", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            assert again.poll() is None, "the hub did not start after the first stopped"
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        again.send_signal(signal.SIGINT)
        again.wait(20)
