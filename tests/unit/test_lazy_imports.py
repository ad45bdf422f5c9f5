"""The command line starts fast: a channel's library is imported only when it is used.

aiogram alone takes seconds to import; the CLI's ``--help`` must not pay for the hub's web
app, nor a hub without bots, mailboxes, SIP lines or PostgreSQL for their libraries. Each
check runs in a fresh interpreter, which is the only honest view of ``sys.modules``.
(bench/startup.py measures the times; this only guards the mechanism.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Imported only with [channels.telegram], [channels.email], [channels.sip] lines, an XLSX
# export, PostgreSQL; playwright never belongs in the hub at all.
CHANNEL_LIBRARIES = ["aiogram", "aioimaplib", "aiosmtplib", "pjsua2", "openpyxl", "asyncpg"]
FORBIDDEN = [*CHANNEL_LIBRARIES, "playwright"]
# What ``omnihub --help`` has no use for: the web app, the ORM, the migrations.
HELP_NEEDS_NONE_OF = [*FORBIDDEN, "hub.app", "aiohttp", "sqlalchemy", "alembic", "argon2"]


def _imported(code: str, tmp_path: Path, names: list[str]) -> list[str]:
    """Which of ``names`` (top-level or dotted modules) are in ``sys.modules`` after ``code``."""
    report = f"print(json.dumps([n for n in {names!r} if n in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{report}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    env["OMNIHUB_MEDIA_DIR"] = str(tmp_path / "media")
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    found: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return found


def test_importing_the_cli_imports_no_channel_library(tmp_path: Path) -> None:
    assert _imported("import hub.cli", tmp_path, HELP_NEEDS_NONE_OF) == []


def test_help_imports_neither_the_app_nor_the_orm(tmp_path: Path) -> None:
    code = (
        "import contextlib, io\n"
        "from hub.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    for argv in (['--help'], ['run', '--help'], ['create-manager', '--help']):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as exit:\n"
        "            assert exit.code == 0, exit.code\n"
    )
    assert _imported(code, tmp_path, HELP_NEEDS_NONE_OF) == []


def test_a_hub_without_channels_imports_no_channel_library(tmp_path: Path) -> None:
    """The app ``omnihub run`` builds on an empty configuration (SQLite, no channels)."""
    code = (
        "from hub.app import create_app\n"
        "from hub.roles import ProcessRole\n"
        "from hub.settings import load_settings\n"
        "create_app(load_settings(), role=ProcessRole.ALL)\n"
    )
    assert _imported(code, tmp_path, FORBIDDEN) == []
