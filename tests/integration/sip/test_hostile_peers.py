"""What a SIP peer sends cannot make a line dial out, nor crash the hub (DESIGN rule 10).

The hub runs as its own process here (``omnihub run``): a crash inside pjsua2 kills that
process and the test sees it, instead of taking pytest down with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.db import Database
from crm_core.models import Call
from tests.factories import add_managers
from tests.integration.sip.peers import Sipp, need_peers, response_codes, udp_port

pytestmark = pytest.mark.timeout(90)
PREMIUM = "+19005550100"
HUB = [sys.executable, "-c", "from hub.cli import main; raise SystemExit(main())"]


def _tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
        )
    return json.dumps(value)  # strings and numbers: JSON's spelling is TOML's


@dataclass
class HubProcess:
    """``omnihub run`` with one listening SIP line, and the peers around it."""

    db: Database
    workdir: Path
    managers: list[int]
    line_port: int = field(default_factory=udp_port)
    http_port: int = field(default_factory=_tcp_port)
    process: subprocess.Popen[bytes] | None = None
    peers: list[Sipp] = field(default_factory=list)

    @property
    def tmp(self) -> Path:
        """The hub's TMPDIR: whatever it leaves there, it left behind."""
        return self.workdir / "tmp"

    @property
    def log_path(self) -> Path:
        return self.workdir / "hub.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def phone(self, name: str, scenario: str | None = None) -> Sipp:
        peer = Sipp.phone(self.workdir / "sipp", name, scenario, hold_ms=300)
        self.peers.append(peer)
        return peer

    def client(self, name: str, scenario: str, **options: object) -> Sipp:
        peer = Sipp.client(self.workdir / "sipp", name, scenario, self.line_port, **options)  # type: ignore[arg-type]
        self.peers.append(peer)
        return peer

    async def start(self, phones: dict[int, Sipp], **line: object) -> None:
        routing = self.workdir / "routing.yaml"
        routing.write_text(
            "teams:\n  Sales:\n    mode: strictly\n"
            f"    members: {self.managers}\n"
            "rules:\n  - name: everything\n    team: Sales\n"
        )
        settings = {
            "database_url": self.db.url,
            "port": self.http_port,
            "routing_file": str(routing),
            "media_dir": str(self.workdir / "media"),
        }
        sip_line = {
            "key": "office",
            "mode": "listen",
            "host": "127.0.0.1",
            "port": self.line_port,
            "ring_timeout_seconds": 10,
            "managers": {str(k): v.uri for k, v in phones.items()},
            **line,
        }
        config = self.workdir / "omnihub.toml"
        config.write_text(
            "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())
            + "[channels.sip]\n[[channels.sip.lines]]\n"
            + "".join(f"{k} = {_toml(v)}\n" for k, v in sip_line.items())
        )
        self.tmp.mkdir(exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp)}
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: ASYNC220 (it returns at once)
                [*HUB, "--config", str(config), "run"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = asyncio.get_running_loop().time() + 30
        while not await self.healthy():
            assert self.process.poll() is None, f"the hub exited: {self.log()}"
            assert asyncio.get_running_loop().time() < deadline, f"no /healthz: {self.log()}"
            await asyncio.sleep(0.1)

    async def healthy(self) -> bool:
        try:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    f"http://127.0.0.1:{self.http_port}/healthz",
                    timeout=aiohttp.ClientTimeout(total=2),
                ) as answer,
            ):
                return answer.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def stays_up(self, seconds: float) -> None:
        """Alive and answering HTTP for ``seconds`` (a crash is an absence: it takes a while)."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while loop.time() < until:
            assert self.process is not None
            code = self.process.poll()
            assert code is None, f"the hub died ({code}): {self.log()}"
            assert await self.healthy(), f"the hub stopped answering: {self.log()}"
            await asyncio.sleep(0.2)

    async def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(asyncio.to_thread(self.process.wait), 30)

    def kill(self) -> None:
        for peer in self.peers:
            peer.kill()
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
async def hub_process(sqlite_url: str, tmp_path: Path) -> AsyncIterator[HubProcess]:
    need_peers()
    db = Database(sqlite_url)
    hub = HubProcess(db, tmp_path, await add_managers(db, 2))
    try:
        yield hub
    finally:
        hub.kill()
        await db.dispose()


async def _calls(db: Database, expected: int = 1, seconds: float = 15) -> list[Call]:
    def work(session: Session) -> list[Call]:
        return list(session.scalars(select(Call).order_by(Call.id)))

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        rows = await db.read(work)
        if len(rows) >= expected or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def _finished(process: Sipp) -> None:
    code = await process.finish()
    assert code == 0, f"SIPp {process.name} exited {code}: {process.log()}"


Check = Callable[[], Awaitable[None]]


async def test_a_refer_is_refused_nothing_is_dialled_and_the_hub_lives_on(
    hub_process: HubProcess,
) -> None:
    hub = hub_process
    anna = hub.phone("anna")
    premium = hub.phone("premium")  # stands at the Refer-To address: it must never ring
    await hub.start({hub.managers[0]: anna})
    target = f"sip:{PREMIUM}@127.0.0.1:{premium.port}"
    client = hub.client("client", "caller_refer.xml", keys={"refer_to": target})
    code = await client.finish()
    answers = response_codes(client.messages(), "REFER")
    assert answers, f"no answer to the REFER: {client.log()}"
    assert all(400 <= a < 700 for a in answers), f"the REFER was not refused: {answers}"
    assert code == 0, f"SIPp client exited {code}: {client.log()}"
    (call,) = await _calls(hub.db)
    await _finished(anna)
    assert (call.disposition, call.manager_id) == ("answered", hub.managers[0])
    assert call.caller == "+79161234567"
    await hub.stays_up(3.0)  # the transferred call used to crash pjsua about 2 s later
    assert premium.process.poll() is None  # still waiting for its first call
    assert "INVITE" not in premium.messages()
    assert len(await _calls(hub.db)) == 1


async def _until(found: Callable[[], str | None], what: str, seconds: float = 10) -> str:
    deadline = asyncio.get_running_loop().time() + seconds
    while (value := found()) is None:
        assert asyncio.get_running_loop().time() < deadline, f"no {what} in {seconds} s"
        await asyncio.sleep(0.05)
    return value


def _header(message: str, name: str) -> str | None:
    match = re.search(rf"^{name}:\s*(.+?)\r?$", message, re.IGNORECASE | re.MULTILINE)
    return match.group(1) if match else None


async def test_an_invite_with_replaces_is_refused_and_the_call_goes_on(
    hub_process: HubProcess,
) -> None:
    hub = hub_process
    anna = hub.phone("anna")
    await hub.start({hub.managers[0]: anna})
    client = hub.client("client", "caller_answered.xml", hold_ms=2500)

    def answered() -> str | None:
        text = client.messages()
        return text[text.index("SIP/2.0 200") :] if "SIP/2.0 200" in text else None

    ok = await _until(answered, "200 OK for the client")
    call_id, to, sent_from = (_header(ok, n) for n in ("Call-ID", "To", "From"))
    assert call_id is not None
    assert to is not None
    assert sent_from is not None
    hub_tag = to.split("tag=", 1)[1].split(";")[0]
    client_tag = sent_from.split("tag=", 1)[1].split(";")[0]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as intruder:
        intruder.bind(("127.0.0.1", 0))
        intruder.settimeout(0.5)
        port = intruder.getsockname()[1]
        sdp = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        sdp += "m=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        invite = (
            f"INVITE sip:office@127.0.0.1:{hub.line_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-replaces-1\r\n"
            f"From: <sip:{PREMIUM}@127.0.0.1:{port}>;tag=intruder\r\n"
            f"To: <sip:office@127.0.0.1:{hub.line_port}>\r\n"
            f"Call-ID: replaces-{port}@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:{PREMIUM}@127.0.0.1:{port}>\r\n"
            f"Replaces: {call_id};to-tag={hub_tag};from-tag={client_tag}\r\n"
            "Max-Forwards: 70\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        intruder.sendto(invite.encode(), ("127.0.0.1", hub.line_port))
        final = 0
        deadline = asyncio.get_running_loop().time() + 5
        while final < 200 and asyncio.get_running_loop().time() < deadline:
            try:
                data = await asyncio.to_thread(intruder.recv, 65535)
            except TimeoutError:
                continue
            final = int(data.split(b" ", 2)[1])
    assert 400 <= final < 700, f"the INVITE with Replaces was answered {final}"
    await _finished(client)  # the client's call went on, and it hung up as it meant to
    (call,) = await _calls(hub.db)
    await _finished(anna)
    assert (call.disposition, call.manager_id) == ("answered", hub.managers[0])
    await hub.stays_up(2.0)
    assert len(await _calls(hub.db)) == 1


async def test_a_stopped_hub_leaves_no_spool_behind(hub_process: HubProcess) -> None:
    hub = hub_process
    await hub.start({hub.managers[0]: hub.phone("anna")})
    assert [p.name[:19] for p in hub.tmp.iterdir()] == ["omnihub-sip-office-"]
    assert await hub.stop() == 0, hub.log()
    assert list(hub.tmp.iterdir()) == []
