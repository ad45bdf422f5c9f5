"""schemathesis against a live hub: the hooks and the webhook admin API never answer 5xx."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.people import create_api_token
from hub.api.openapi import document
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN, add_managers
from webhooks.sources import KINDS

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
KEYS = {
    "form": {"secret": "hook-token"},
    "tilda": {"api_key": "tilda-key"},
    "google_ads": {"google_key": "g-key"},
    "vk": {"confirmation": "c0de", "secret": "vk-secret"},
    "meta": {
        "app_secret": "app-secret",
        "verify_token": "verify",
        "access_token": "token",
        "graph_base": "http://127.0.0.1:9/v21.0",
    },
    "yandex_forms": {"secret": "hook-token"},
    "zadarma": {"api_secret": "zd-secret"},
    "standard": {"secret": "whsec_c2NoZW1hdGhlc2lzLXRlc3Qtc2VjcmV0"},
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _schema() -> dict[str, Any]:
    """Our paths only, with each hook's ``source`` pinned to the configured key."""
    doc = copy.deepcopy(document())
    doc["paths"] = {
        path: item
        for path, item in doc["paths"].items()
        if path.startswith(("/hooks/", "/api/v1/webhooks/"))
    }
    for slug, kind in KINDS.items():
        pinned = {"type": "string", "enum": [f"src-{kind}"]}
        for operation in doc["paths"][f"/hooks/{slug}/{{source}}"].values():
            operation["parameters"] = [
                {**p, "schema": pinned} if p["name"] == "source" else p
                for p in operation["parameters"]
            ]
    return doc


async def test_no_server_errors(sqlite_url: str, clock: ManualClock, tmp_path: Path) -> None:
    assert SCHEMATHESIS.exists(), "install the dev extra: pip install -e '.[dev]'"
    db = Database(sqlite_url)
    try:
        await add_managers(db, 1)

        def token(session: Session) -> str:
            journal = Journal("test", WHEN)
            _row, plain = create_api_token(session, journal, "schemathesis")
            journal.flush(session)
            return plain

        plain = await db.write(token)
    finally:
        await db.dispose()
    sources = [{"key": f"src-{kind}", "kind": kind, **opts} for kind, opts in KEYS.items()]
    settings = Settings(
        database_url=sqlite_url,
        max_body_bytes=64 * 1024,
        channels={"webhooks": {"sources": sources, "delivery_timeout_seconds": 1}},
    )
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(_schema()), encoding="utf-8")
    runner = web.AppRunner(create_app(settings, clock=clock))
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            "run",
            str(schema),
            "--url",
            f"http://127.0.0.1:{port}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "20",
            "--seed",
            "20261127",
            # One worker: hypothesis parses sources with ``ast`` and CPython 3.11's AST
            # constructor is not thread-safe ("recursion depth mismatch", gh-106905).
            "--workers",
            "1",
            "--no-shrink",
            "--request-timeout",
            "10",
            "--header",
            f"Authorization: Bearer {plain}",
            # The shared secrets of the token-checked sources, so that bodies reach the parsers.
            "--header",
            "X-Hook-Token: hook-token",
            "--header",
            "api_key: tilda-key",
            "--report-dir",
            str(tmp_path / "reports"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=tmp_path,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await runner.cleanup()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "generated" in text
