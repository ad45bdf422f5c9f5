"""A request with header bytes an HTTP client library would refuse to send (not UTF-8)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

LATIN1_BYTES = "caf\xe9 \xff".encode("latin-1")  # not UTF-8: aiohttp reads them surrogate-escaped


@dataclass(frozen=True)
class RawAnswer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    headers: list[tuple[str, bytes]],
    body: bytes = b"",
) -> RawAnswer:
    """One HTTP/1.1 request written byte for byte to the test server; its status and body."""
    host, port = client.server.host, client.server.port
    assert port is not None
    reader, writer = await asyncio.open_connection(host, port)
    lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode()]
    lines += [name.encode() + b": " + value for name, value in headers]
    lines += [f"Content-Length: {len(body)}".encode(), b"Connection: close"]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        rest = _unchunked(rest)
    return RawAnswer(status, rest)


def _unchunked(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out
