"""Run schemathesis against a live hub with every check: no request it generates may get a
5xx, an undocumented status or content type, or a response that breaks its schema; a
request that breaks the schema must be refused."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def fuzz(
    app: web.Application,
    document: dict[str, Any],
    headers: list[str],
    folder: Path,
    before: Any = None,
) -> str:
    """Serve ``app``, call ``before(base_url)`` (to seed data through the API), run
    schemathesis over ``document``; returns its output, asserting it found nothing."""
    assert SCHEMATHESIS.exists(), "install the dev extra: pip install -e '.[dev]'"
    schema = folder / "openapi.json"
    schema.write_text(json.dumps(document), encoding="utf-8")
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    try:
        if before is not None:
            await before(base)
        arguments = [
            "run",
            str(schema),
            "--url",
            base,
            "--checks",
            "all",
            # A schema-valid body the hub refuses for a rule JSON Schema cannot say (the
            # README's "What schemathesis reports" lists them): not a failure here.
            "--exclude-checks",
            "positive_data_acceptance",
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
            "--report-dir",
            str(folder / "reports"),
        ]
        for header in headers:
            arguments += ["--header", header]
        process = await asyncio.create_subprocess_exec(
            str(SCHEMATHESIS),
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=folder,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=270)
    finally:
        await runner.cleanup()
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    assert "generated" in text
    return text
