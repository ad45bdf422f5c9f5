"""The embedded hub as a newcomer runs it: ``omnihub`` commands in a fresh folder."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

OMNIHUB = [sys.executable, "-m", "hub.cli"]
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OMNIHUB_DATABASE_URL": f"sqlite:///{folder / 'hub.sqlite3'}",
        "PYTHONPATH": str(ROOT),
    }


def _omnihub(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*OMNIHUB, *args],
        cwd=folder,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _request(
    url: str, body: dict[str, object] | None = None, token: str | None = None
) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")  # noqa: S310
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - localhost
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_healthy(url: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if _request(url)[0] == 200:
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail("the hub did not become healthy within 30 s")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_run_serves_and_stops_cleanly(tmp_path: Path, stop: signal.Signals) -> None:
    made = _omnihub(
        tmp_path,
        "create-manager",
        "--email",
        "anna@example.test",
        "--name",
        "Anna",
        "--no-password",
    )
    assert made.returncode == 0, made.stderr
    token = _omnihub(tmp_path, "create-token", "--name", "site").stdout.strip().splitlines()[-1]
    assert token.startswith("omh_")
    personal = _omnihub(
        tmp_path, "create-token", "--name", "anna", "--manager-email", "Anna@Example.test"
    ).stdout.strip()
    assert personal.startswith("omh_")
    unknown = _omnihub(tmp_path, "create-token", "--name", "x", "--manager-email", "no@pe.test")
    assert unknown.returncode != 0
    assert "no manager with the email no@pe.test" in unknown.stderr
    port = _free_port()
    process = subprocess.Popen(
        [*OMNIHUB, "run", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(f"{base}/healthz", process)
        status, result = _request(
            f"{base}/api/v1/inbound",
            {
                "external_id": "cli-1",
                "sender": {"identities": [{"kind": "phone", "value": "+7 916 123 45 67"}]},
                "text": "hi",
            },
            token,
        )
        assert status == 201
        # A token that speaks for Anna sees her inbox; an integration token has no "mine".
        status, _ = _request(f"{base}/api/v1/inbox?view=mine", token=personal)
        assert status == 200
        status, _ = _request(f"{base}/api/v1/inbox?view=mine", token=token)
        assert status == 400
        assert result["assignee_id"] == 1
        process.send_signal(stop)
        _out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "omnihub stopped" in err
    assert "Traceback" not in err


def test_bad_configuration_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "omnihub.toml"
    config.write_text("port = 'x'\n", encoding="utf-8")
    result = _omnihub(tmp_path, "--config", str(config), "migrate")
    assert result.returncode == 2
    assert "port" in result.stderr
    assert "Traceback" not in result.stderr


def test_duplicate_manager_is_refused(tmp_path: Path) -> None:
    args = ("create-manager", "--email", "a@example.test", "--name", "A", "--no-password")
    assert _omnihub(tmp_path, *args).returncode == 0
    again = _omnihub(tmp_path, *args)
    assert again.returncode == 2
    assert "already exists" in again.stderr


def test_a_short_password_is_refused_as_the_api_refuses_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNIHUB_TEST_PASSWORD", "too-short")
    args = ("create-manager", "--email", "a@example.test", "--name", "A")
    short = _omnihub(tmp_path, *args, "--password-env", "OMNIHUB_TEST_PASSWORD")
    assert short.returncode == 2
    assert "at least 10 characters" in short.stderr
    monkeypatch.setenv("OMNIHUB_TEST_PASSWORD", "long enough now")
    assert _omnihub(tmp_path, *args, "--password-env", "OMNIHUB_TEST_PASSWORD").returncode == 0


def test_a_routing_file_naming_an_unknown_team_stops_the_start(tmp_path: Path) -> None:
    rules = tmp_path / "routing.yaml"
    rules.write_text(
        "teams: {Sales: {}}\nrules:\n  - {name: default, team: Saels}\n", encoding="utf-8"
    )
    env = {**_env(tmp_path), "OMNIHUB_ROUTING_FILE": str(rules)}
    result = subprocess.run(
        [*OMNIHUB, "run", "--port", str(_free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "unknown team 'Saels'" in result.stderr
    assert "Traceback" not in result.stderr
