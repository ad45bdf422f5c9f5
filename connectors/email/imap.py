"""IMAP sessions over aioimaplib: connect (TLS, STARTTLS or plain), log in, select, fetch."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aioimaplib

from connectors.email.config import ServerConfig

log = logging.getLogger(__name__)

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_FETCH_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    """The server said no, or the connection broke; the reader reconnects with backoff."""


def _lines(response: Any) -> list[bytes | bytearray]:
    return [line for line in response.lines if isinstance(line, bytes | bytearray)]


def check(response: Any, what: str) -> Any:
    if response.result != "OK":
        text = b" ".join(bytes(x) for x in _lines(response)[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {text[:200]}")
    return response


@asynccontextmanager
async def session(server: ServerConfig, wait: float = 30.0) -> AsyncIterator[Any]:
    """A logged-in ``aioimaplib.IMAP4``; logs out (or drops the line) on the way out."""
    context = server.tls_context()
    client: Any
    if server.security == "tls":
        client = aioimaplib.IMAP4_SSL(server.host, server.port, timeout=wait, ssl_context=context)
    else:
        client = aioimaplib.IMAP4(server.host, server.port, timeout=wait)
    try:
        try:
            await asyncio.wait_for(client.wait_hello_from_server(), wait)
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            raise ImapError(f"cannot reach {server.host}:{server.port}: {exc}") from exc
        if server.security == "starttls":
            assert context is not None
            await _starttls(client, server.host, context)
        # aioimaplib scrubs the password from its own debug log.
        check(await client.login(server.user, server.password), "LOGIN")
        yield client
    finally:
        await _close(client)


async def _starttls(client: Any, host: str, context: ssl.SSLContext) -> None:
    """aioimaplib has no STARTTLS: ask for it, then upgrade the protocol's transport."""
    check(await client.protocol.execute(_command(client, "STARTTLS")), "STARTTLS")
    loop = asyncio.get_running_loop()
    protocol = client.protocol
    try:
        transport = await loop.start_tls(
            protocol.transport, protocol, context, server_hostname=host
        )
    except (ssl.SSLError, OSError) as exc:
        raise ImapError(f"STARTTLS with {host}: {exc}") from exc
    protocol.transport = transport
    await client.protocol.capability()


def _command(client: Any, name: str) -> Any:
    protocol = client.protocol
    return aioimaplib.Command(name, protocol.new_tag(), loop=protocol.loop)


async def _close(client: Any) -> None:
    try:
        if client.has_pending_idle():
            client.idle_done()
        if client.get_state() in {"AUTH", "SELECTED"}:
            await asyncio.wait_for(client.logout(), 5)
    except Exception as exc:  # the line may already be gone
        log.debug("logout failed: %s", exc)
    transport = getattr(client.protocol, "transport", None)
    if transport is not None:
        transport.close()


async def select(client: Any, folder: str) -> int:
    """Select ``folder``; answers its UIDVALIDITY."""
    response = check(await client.select(_quote(folder)), f"SELECT {folder}")
    for line in _lines(response):
        found = _UIDVALIDITY.search(bytes(line))
        if found:
            return int(found.group(1))
    raise ImapError(f"SELECT {folder}: no UIDVALIDITY in the answer")


async def uids_after(client: Any, last_uid: int) -> list[int]:
    response = check(await client.uid_search(f"UID {last_uid + 1}:*", charset=None), "SEARCH")
    uids: list[int] = []
    for line in _lines(response):
        text = bytes(line).decode("ascii", "replace")
        if text.startswith("SEARCH") or text[:1].isdigit():
            uids += [int(x) for x in text.replace("SEARCH", "").split() if x.isdigit()]
    # ``N:*`` always matches the last message, even when its UID is below N.
    return sorted(uid for uid in set(uids) if uid > last_uid)


async def fetch(client: Any, uids: list[int]) -> dict[int, bytes]:
    """The raw bytes of ``uids`` (one round trip); a message gone meanwhile is absent."""
    if not uids:
        return {}
    response = check(
        await client.uid("fetch", ",".join(map(str, uids)), "(UID BODY.PEEK[])"), "FETCH"
    )
    found: dict[int, bytes] = {}
    lines = response.lines
    for i, line in enumerate(lines[:-1]):
        if isinstance(line, bytes) and b"FETCH" in line and isinstance(lines[i + 1], bytearray):
            uid = _FETCH_UID.search(line)
            if uid is None and i + 2 < len(lines):  # UID may come after the literal
                uid = _FETCH_UID.search(bytes(lines[i + 2]))
            if uid is not None:
                found[int(uid.group(1))] = bytes(lines[i + 1])
    return found


def watch_new_mail(client: Any) -> asyncio.Event:
    """An event set on every ``EXISTS`` the server sends, the unsolicited ones included.

    aioimaplib drops an untagged response that arrives while no command is pending
    (Dovecot sends ``* n EXISTS`` right after a SEARCH, before our IDLE is on the
    wire): without this, such mail would wait for the next IDLE renewal.
    """
    protocol = client.protocol
    event = asyncio.Event()
    untagged = protocol._untagged_response

    def spy(line: bytes) -> Any:
        if line.endswith(b"EXISTS"):
            event.set()
        return untagged(line)

    protocol._untagged_response = spy
    return event


async def capabilities(client: Any) -> set[str]:
    return {c.upper() for c in client.protocol.capabilities}


async def append(client: Any, data: bytes, folder: str, flags: str | None = None) -> None:
    check(await client.append(data, mailbox=_quote(folder), flags=flags), f"APPEND {folder}")


async def create(client: Any, folder: str) -> None:
    check(await client.create(_quote(folder)), f"CREATE {folder}")


def _quote(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./-]+", folder):
        return folder
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'
