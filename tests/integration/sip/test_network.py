"""A line's network settings against SIPp: the address it advertises, its RTP ports, and
who may call it (``allow_from``).

The hub runs in-process with one listening line on 127.0.0.1; SIPp clients send from
127.0.0.1 or 127.0.0.2 (the whole of 127.0.0.0/8 is loopback on Linux).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.sip.bridge import Bridge
from connectors.sip.config import LineConfig
from connectors.sip.events import CallEnded, SipEvent
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import CallDisposition
from crm_core.models import Call, Contact, Conversation, Message
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, count_rows
from tests.integration.sip.peers import Sipp, need_peers, response_codes, udp_port

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
pytestmark = pytest.mark.timeout(90)
OUTSIDER = "127.0.0.2"  # a loopback address the allow-lists below leave out


@dataclass
class Line:
    db: Database
    workdir: Path
    managers: list[int]
    port: int = field(default_factory=udp_port)
    peers: list[Sipp] = field(default_factory=list)

    def phone(self, name: str, calls: int = 1) -> Sipp:
        peer = Sipp.phone(self.workdir, name, calls=calls, hold_ms=300)
        self.peers.append(peer)
        return peer

    def client(self, name: str, scenario: str, **options: Any) -> Sipp:
        peer = Sipp.client(self.workdir, name, scenario, self.port, **options)
        self.peers.append(peer)
        return peer


Start = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def line(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Line]:
    need_peers()
    db = Database(sqlite_url)
    found = Line(db, tmp_path / "sipp", await add_managers(db, 1))
    try:
        yield found
    finally:
        for peer in found.peers:
            peer.kill()
        await db.dispose()


@pytest.fixture
def start(
    line: Line,
    sqlite_url: str,
    clock: ManualClock,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> Start:
    async def run(
        phone: Sipp | None = None, *, open_now: bool = True, **settings: Any
    ) -> TestClient[Any, Any]:
        hours = "" if open_now else "    hours: {timezone: UTC, weekly: {mon: ['10:00-18:00']}}\n"
        routing = tmp_path / "routing.yaml"
        routing.write_text(
            f"teams:\n  Sales:\n    mode: strictly\n    members: {line.managers}\n"
            + hours
            + "rules:\n  - name: everything\n    team: Sales\n"
        )
        config = {
            "key": "office",
            "mode": "listen",
            "host": "127.0.0.1",
            "port": line.port,
            "voicemail_max_seconds": 5,
            "managers": {str(line.managers[0]): phone.uri} if phone else {},
            **settings,
        }
        hub = Settings(
            database_url=sqlite_url,
            routing_file=str(routing),
            channels={"sip": {"media_dir": str(tmp_path / "media"), "lines": [config]}},
        )
        return await aiohttp_client(create_app(hub, clock=clock))

    return run


async def _ok(peer: Sipp) -> None:
    code = await peer.finish()
    assert code == 0, f"SIPp {peer.name} exited {code}: {peer.log()}"


async def _calls(db: Database, expected: int = 1, seconds: float = 15) -> list[Call]:
    def work(session: Session) -> list[Call]:
        return list(session.scalars(select(Call).order_by(Call.id)))

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        rows = await db.read(work)
        if len(rows) >= expected or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Sdp:
    connection: str
    origin: str
    audio_port: int
    rtcp_port: int


def _received_sdp(messages: str, first_line: str) -> Sdp:
    """The SDP of the first message SIPp received that starts with ``first_line``."""
    found = _all_received_sdp(messages, first_line)
    if not found:
        raise AssertionError(f"no {first_line!r} with SDP received:\n{messages[-3000:]}")
    return found[0]


def _all_received_sdp(messages: str, first_line: str) -> list[Sdp]:
    """The SDP of each message SIPp received that starts with ``first_line``."""
    found = []
    for block in messages.split("message received")[1:]:
        text = block.split("-----------------", 1)[0]
        start = text.find("\n\n")
        if not text[start:].lstrip().startswith(first_line) or "\nv=0" not in text:
            continue
        body = text.split("\nv=0", 1)[1]
        connection = re.search(r"^c=IN IP4 (\S+)", body, re.MULTILINE)
        origin = re.search(r"^o=\S+ \d+ \d+ IN IP4 (\S+)", body, re.MULTILINE)
        audio = re.search(r"^m=audio (\d+) ", body, re.MULTILINE)
        rtcp = re.search(r"^a=rtcp:(\d+)", body, re.MULTILINE)
        assert connection, body
        assert origin, body
        assert audio, body
        rtcp_port = int(rtcp.group(1)) if rtcp else int(audio.group(1)) + 1
        found.append(Sdp(connection.group(1), origin.group(1), int(audio.group(1)), rtcp_port))
    return found


def _received_header(messages: str, first_line: str, name: str) -> str:
    for block in messages.split("message received")[1:]:
        text = block.split("-----------------", 1)[0].strip()
        head = text.split("\n", 1)[-1].lstrip()
        if head.startswith(first_line):
            found = re.search(rf"^{name}:\s*(.+)$", head, re.MULTILINE | re.IGNORECASE)
            if found:
                return found.group(1).strip()
    raise AssertionError(f"no {name} in a {first_line!r}:\n{messages[-3000:]}")


def _free_ports(count: int) -> int:
    """The first of ``count`` free UDP ports in a row on loopback (an even one)."""
    for _ in range(100):
        first = udp_port()
        taken = []
        try:
            for port in range(first, first + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                taken.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in taken:
                sock.close()
        return first
    raise RuntimeError("no free run of UDP ports")


async def test_the_loopback_line_advertises_loopback_in_its_sdp_and_contact(
    line: Line, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    anna = line.phone("anna")
    await start(anna)
    assert any(
        "takes calls from anyone" in r.getMessage() and r.levelno == logging.WARNING
        for r in caplog.records
    ), caplog.text
    client = line.client("client", "caller_reads_sdp.xml", hold_ms=300)
    await _ok(client)
    await _ok(anna)
    answer = _received_sdp(client.messages(), "SIP/2.0 200 OK")
    assert (answer.connection, answer.origin) == ("127.0.0.1", "127.0.0.1")
    offer = _received_sdp(anna.messages(), "INVITE ")  # the leg the line placed
    assert (offer.connection, offer.origin) == ("127.0.0.1", "127.0.0.1")
    assert f"@127.0.0.1:{line.port}" in _received_header(
        client.messages(), "SIP/2.0 200", "Contact"
    )
    assert f"127.0.0.1:{line.port}" in _received_header(anna.messages(), "INVITE ", "Via")
    (call,) = await _calls(line.db)
    assert call.disposition == "answered"


async def test_public_address_is_what_the_line_advertises(line: Line, start: Start) -> None:
    public = "192.0.2.77"  # TEST-NET-1: nothing answers there, and nothing has to
    await start(open_now=False, public_address=public)  # a voicemail: the line answers
    client = line.client("client", "caller_reads_sdp.xml", hold_ms=300)
    await _ok(client)
    answer = _received_sdp(client.messages(), "SIP/2.0 200 OK")
    assert (answer.connection, answer.origin) == (public, public)
    contact = _received_header(client.messages(), "SIP/2.0 200", "Contact")
    assert f"@{public}:{line.port}" in contact
    (call,) = await _calls(line.db)
    assert call.disposition == "voicemail"


async def test_rtp_ports_stay_in_the_configured_range(line: Line, start: Start) -> None:
    low = _free_ports(8)
    high = low + 7  # room for two calls at once; three in turn wrap around to low
    anna = line.phone("anna", calls=3)
    await start(anna, rtp_port_min=low, rtp_port_max=high)
    seen = set()
    for n in range(3):
        client = line.client(f"client{n}", "caller_reads_sdp.xml", hold_ms=200)
        await _ok(client)
        await _calls(line.db, n + 1)
        answer = _received_sdp(client.messages(), "SIP/2.0 200 OK")
        seen.add(answer.audio_port)
        for port in (answer.audio_port, answer.rtcp_port):
            assert low <= port <= high, (low, high, answer)
    await _ok(anna)
    for offer in _all_received_sdp(anna.messages(), "INVITE "):  # the managers' legs
        seen.add(offer.audio_port)
        assert low <= offer.audio_port < offer.rtcp_port <= high, (low, high, offer)
    assert seen <= set(range(low, high, 2))
    assert len(await _calls(line.db, 3)) == 3


async def test_a_caller_outside_allow_from_is_refused_and_nothing_is_stored(
    line: Line, start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    anna = line.phone("anna")
    await start(anna, allow_from=["10.0.0.0/8", "127.0.0.1"])
    assert not [r for r in caplog.records if "takes calls from anyone" in r.getMessage()]
    refused = line.client("outsider", "caller_forbidden.xml", local_ip=OUTSIDER)
    await _ok(refused)
    assert response_codes(refused.messages(), "INVITE")[-1] == 403
    watcher = line.client("watcher", "subscriber_forbidden.xml", local_ip=OUTSIDER)
    await _ok(watcher)
    assert response_codes(watcher.messages(), "SUBSCRIBE") == [403]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(OUTSIDER in text and "allow_from" in text for text in warnings), warnings
    await asyncio.sleep(0.5)  # time for anything the hub might (wrongly) store
    for model in (Call, Message, Contact, Conversation):
        assert await count_rows(line.db, model) == 0, model
    assert not anna.messages()  # no manager's phone rang

    allowed = line.client("client", "caller_reads_sdp.xml", hold_ms=300)
    await _ok(allowed)
    await _ok(anna)
    (call,) = await _calls(line.db)
    assert call.disposition == "answered"
    assert await count_rows(line.db, Message) == 1


async def test_a_call_pjsua_turned_away_is_stored_only_from_an_allowed_source(
    tmp_path: Path,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pjsua answers 486 itself when every call slot is taken; the hub stores such a call
    as missed, but not one from outside ``allow_from`` (nor for no line, while a line's
    allow-list shuts its source out)."""
    need_peers()
    from connectors.sip.endpoint import SipEngine
    from connectors.sip.line import Line as SipLine

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the line's voicemail folder
    bridge: Bridge[SipEvent] = Bridge(asyncio.get_running_loop())
    engine = SipEngine(bridge, clock.now)
    config = LineConfig("office", port=5070, allow_from=(ipaddress.ip_network("127.0.0.1/32"),))
    engine.lines["office"] = SipLine(None, config, bridge, clock.now)

    def invite(uri: str, call_id: str) -> str:
        return (
            f"INVITE {uri} SIP/2.0\r\nCall-ID: {call_id}\r\n"
            "From: <sip:89161234567@127.0.0.2>;tag=1\r\nTo: <sip:office@127.0.0.1>\r\n\r\n"
        )

    engine.rejected(invite("sip:office@127.0.0.1:5070", "outsider"), "office", "127.0.0.2:5060")
    engine.rejected(invite("sip:nobody@192.0.2.1:5060", "stranger"), "office", "127.0.0.2:5060")
    engine.rejected(invite("sip:office@127.0.0.1:5070", "insider"), "office", "127.0.0.1:5060")
    await asyncio.sleep(0.05)
    events = []
    while True:
        try:
            events.append(bridge.drain_one())
        except LookupError:
            break
    assert [(e.call_id, e.disposition) for e in events if isinstance(e, CallEnded)] == [
        ("insider", CallDisposition.MISSED)
    ]
    assert len(events) == 1
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([text for text in warned if "from 127.0.0.2 refused" in text]) == 1, warned


@pytest.mark.parametrize("rewrite", [False, True])
async def test_contact_rewrite_takes_the_address_the_registrar_saw_only_when_asked(
    line: Line, start: Start, rewrite: bool
) -> None:
    registrar = Sipp.phone(line.workdir, "registrar", "registrar_behind_nat.xml")
    line.peers.append(registrar)
    await start(
        mode="register",
        registrar=f"sip:127.0.0.1:{registrar.port}",
        user="office",
        contact_rewrite=rewrite,
    )
    await _ok(registrar)
    requests = _requests(registrar.messages())
    contacts = re.findall(r"^Contact:\s*(.+)$", requests, re.MULTILINE)
    assert f"127.0.0.1:{line.port}" in contacts[0]
    if rewrite:  # registered again at the NAT's address (and the old binding dropped)
        assert "<sip:office@203.0.113.50:40000;ob>" in contacts[1:], contacts
        vias = re.findall(r"^Via:\s*SIP/2.0/UDP ([^;]+)", requests, re.MULTILINE)
        assert vias[-1] == "203.0.113.50:40000", vias
    else:
        assert contacts == contacts[:1], contacts


def _requests(messages: str) -> str:
    """The requests SIPp received, one after another."""
    blocks = [b.split("-----------------", 1)[0] for b in messages.split("message received")[1:]]
    return "\n".join(b for b in blocks if "SIP/2.0\n" in b.replace("\r", ""))
