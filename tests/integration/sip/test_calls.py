"""Real SIP: SIPp calls a line of the hub and plays the managers' phones (testbed.md).

Each test starts the hub (its own pjsua2 user agent) on a free UDP port, a SIPp
client and SIPp phones; every SIPp process is killed in ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import socket
import struct
import wave
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Call, Contact, ContactIdentity, Conversation, Deal, Message, Task
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, api_token, count_rows, inbound, phone
from tests.integration.sip.peers import Sipp, need_peers, response_codes, udp_port

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
pytestmark = pytest.mark.timeout(90)


@dataclass
class Hub:
    db: Database
    clock: ManualClock
    line_port: int
    managers: list[int]
    workdir: Path
    media: Path
    processes: list[Sipp] = field(default_factory=list)

    def phone(self, name: str, scenario: str | None = None, calls: int = 1) -> Sipp:
        process = Sipp.phone(self.workdir, name, scenario, calls, hold_ms=300)
        self.processes.append(process)
        return process

    def client(self, name: str, scenario: str, **options: Any) -> Sipp:
        process = Sipp.client(self.workdir, name, scenario, self.line_port, **options)
        self.processes.append(process)
        return process


def _routing(tmp_path: Path, members: list[int], open_now: bool) -> Path:
    hours = "" if open_now else ("    hours: {timezone: UTC, weekly: {mon: ['10:00-18:00']}}\n")
    text = (
        "teams:\n  Sales:\n    mode: strictly\n"
        f"    members: {members}\n" + hours + "rules:\n  - name: everything\n    team: Sales\n"
    )
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return path


def _speech(folder: Path, seconds: float, hertz: int = 440) -> Path:
    """``seconds`` of a tone as an 8 kHz mu-law WAV (what SIPp's rtp_stream plays)."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = (
        int(12000 * math.sin(2 * math.pi * hertz * n / 8000)) for n in range(int(8000 * seconds))
    )
    data = bytes(_ulaw(sample) for sample in samples)
    fmt = struct.pack("<HHIIHH", 7, 1, 8000, 8000, 1, 8)  # WAVE_FORMAT_MULAW, mono, 8 bit
    body = (
        b"WAVE"
        + b"fmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
    path = folder / "speech.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def _ulaw(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, magnitude.bit_length() - 8)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _greeting(path: Path) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        frames = (int(8000 * math.sin(2 * math.pi * 440 * n / 8000)) for n in range(4000))
        out.writeframes(b"".join(struct.pack("<h", f) for f in frames))
    return path


@pytest.fixture
async def hub_factory(
    sqlite_url: str,
    clock: ManualClock,
    tmp_path: Path,
    aiohttp_client: ClientFactory,
) -> AsyncIterator[Factory]:
    need_peers()
    hubs: list[Hub] = []
    db = Database(sqlite_url)  # the SIP tests run on SQLite; the core's call tests on both

    async def make(
        **line: Any,
    ) -> tuple[Hub, Start]:
        managers = await add_managers(db, 2)
        hub = Hub(db, clock, udp_port(), managers, tmp_path / "sipp", tmp_path / "media")
        hubs.append(hub)

        async def start(
            phones: dict[int, Sipp], open_now: bool = True, **more: Any
        ) -> TestClient[Any, Any]:
            config = {
                "key": "office",
                "mode": "listen",
                "host": "127.0.0.1",
                "port": hub.line_port,
                "ring_timeout_seconds": 10,
                "voicemail_max_seconds": 5,
                "greeting_wav": str(_greeting(tmp_path / "greeting.wav")),
                "managers": {str(k): v.uri for k, v in phones.items()},
                **line,
                **more,
            }
            settings = Settings(
                database_url=sqlite_url,
                routing_file=str(_routing(tmp_path, managers, open_now)),
                channels={"sip": {"media_dir": str(hub.media), "lines": [config]}},
            )
            return await aiohttp_client(create_app(settings, clock=clock))

        return hub, start

    try:
        yield make
    finally:
        for hub in hubs:
            for process in hub.processes:
                process.kill()
        await db.dispose()


Start = Callable[..., Awaitable[TestClient[Any, Any]]]
Factory = Callable[..., Awaitable[tuple[Hub, Start]]]


async def _calls(db: Database, expected: int = 1, seconds: float = 15) -> list[Call]:
    def work(session: Session) -> list[Call]:
        return list(session.scalars(select(Call).order_by(Call.id)))

    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        rows = await db.read(work)
        if len(rows) >= expected or asyncio.get_running_loop().time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def _tasks(db: Database) -> list[Task]:
    return await db.read(lambda s: list(s.scalars(select(Task).order_by(Task.id))))


async def _ok(process: Sipp) -> None:
    code = await process.finish()
    assert code == 0, f"SIPp {process.name} exited {code}: {process.log()}"


async def test_answered_call_is_bridged_to_the_routed_manager(
    hub_factory: Factory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hub, start = await hub_factory()
    anna = hub.phone("anna")
    await start({hub.managers[0]: anna})
    loop = asyncio.get_running_loop()
    began = loop.time()
    client = hub.client("client", "caller_answered.xml", hold_ms=300)
    await _ok(client)
    (call,) = await _calls(hub.db)
    logging.getLogger(__name__).info("call stored %.3f s after the INVITE", loop.time() - began)
    await _ok(anna)
    assert call.disposition == "answered"
    assert call.manager_id == hub.managers[0]
    assert call.caller == "+79161234567"
    assert call.direction == "in"
    assert call.answered_at is not None
    identity = await hub.db.read(lambda s: s.scalars(select(ContactIdentity)).one())
    assert (identity.value, identity.contact_id) == ("+79161234567", call.contact_id)
    assert not [t for t in await _tasks(hub.db) if t.kind == "call_back"]


async def test_cancelled_while_ringing_is_a_missed_call_with_a_call_back(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna", "manager_ringing.xml")
    await start({hub.managers[0]: anna})
    client = hub.client("client", "caller_cancel.xml", hold_ms=800)
    await _ok(client)
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert call.disposition == "missed"
    assert call.manager_id == hub.managers[0]  # the manager it was routed to
    (task,) = await _tasks(hub.db)
    assert task.kind == "call_back"
    assert task.due_at == hub.clock.now() + timedelta(minutes=15)
    assert task.assignee_id == hub.managers[0]
    assert task.deal_id is not None
    text = await hub.db.read(lambda s: s.scalars(select(Message.text)).one())
    assert text == "Missed call from +79161234567, 0:00"


async def test_busy_phone_gives_the_client_busy_and_a_call_back(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna", "manager_busy.xml")
    await start({hub.managers[0]: anna})
    began = asyncio.get_running_loop().time()
    await _ok(hub.client("client", "caller_busy.xml"))
    (call,) = await _calls(hub.db)
    took = asyncio.get_running_loop().time() - began
    logging.getLogger(__name__).info("busy call stored %.3f s after SIPp started", took)
    await _ok(anna)
    assert call.disposition == "busy"
    assert [t.kind for t in await _tasks(hub.db)] == ["call_back"]


async def test_unanswered_phone_is_cancelled_and_the_next_manager_rings(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory(ring_timeout_seconds=1)
    anna = hub.phone("anna", "manager_ringing.xml")
    boris = hub.phone("boris")
    await start({hub.managers[0]: anna, hub.managers[1]: boris})
    await _ok(hub.client("client", "caller_answered.xml", hold_ms=300))
    (call,) = await _calls(hub.db)
    await _ok(anna)  # it saw the CANCEL after the timeout
    await _ok(boris)
    assert call.disposition == "answered"
    assert call.manager_id == hub.managers[1]


async def test_out_of_hours_the_line_takes_a_voicemail(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    client = await start({}, open_now=False)  # the clock says Monday 09:00; team opens at 10
    await _ok(hub.client("client", "caller_answered.xml", hold_ms=1500))
    (call,) = await _calls(hub.db)
    assert call.disposition == "voicemail"
    assert call.voicemail is not None
    stored = (hub.media / call.voicemail["storage_key"]).read_bytes()
    assert stored[:4] == b"RIFF"
    assert stored[8:12] == b"WAVE"
    assert len(stored) > 8000  # about a second of 16-bit audio at 8 kHz, and more
    (task,) = await _tasks(hub.db)
    assert task.kind == "call_back"
    assert task.due_at == hub.clock.now() + timedelta(minutes=15)
    message = await hub.db.read(lambda s: s.scalars(select(Message)).one())
    assert message.attachments[0]["storage_key"] == call.voicemail["storage_key"]
    # The inbox plays it from the API: the line's store is the hub's.
    token = await api_token(hub.db)
    download = await client.get(
        f"/api/v1/messages/{message.id}/attachments/0", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert await download.read() == stored


async def test_a_repeat_of_the_same_call_id_is_stored_once(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna")
    await start({hub.managers[0]: anna})
    await _ok(hub.client("first", "caller_answered.xml", call_id="repeat-%u@client.test"))
    await _calls(hub.db)
    await _ok(anna)
    second = hub.client("second", "caller_answered.xml", call_id="repeat-%u@client.test")
    assert await second.finish() != 0  # refused: that call is over
    assert {c for c in response_codes(second.messages(), "INVITE") if c >= 200} == {482}
    assert await count_rows(hub.db, Call) == 1
    assert await count_rows(hub.db, Message) == 1


async def test_a_late_copy_of_the_invite_leaves_the_answered_call_alone(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna")  # answers one call; a second ring would find nobody
    await start({hub.managers[0]: anna})
    client = hub.client("client", "caller_invite_again.xml", hold_ms=300)
    code = await client.finish()
    finals = [c for c in response_codes(client.messages(), "INVITE") if c >= 200]
    assert finals == [200, 482], client.messages()
    assert code == 0, f"SIPp client exited {code}: {client.log()}"
    sent = [m for m in client.messages().split("message sent")[1:] if "CSeq: 1 INVITE" in m]
    branches = {m.split("branch=", 1)[1].split()[0] for m in sent}
    assert (len(sent), len(branches)) == (2, 1)  # the very same INVITE, twice
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert (call.disposition, call.manager_id) == ("answered", hub.managers[0])
    assert call.answered_at is not None
    assert anna.messages().count("bytes :\n\nINVITE ") == 1  # her phone rang once
    assert await count_rows(hub.db, Call) == 1
    assert not [t for t in await _tasks(hub.db) if t.kind == "call_back"]


async def test_more_callers_than_slots_are_each_answered_or_called_back(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna", calls=6)
    boris = hub.phone("boris", calls=6)
    await start({hub.managers[0]: anna, hub.managers[1]: boris})
    callers = hub.client("callers", "caller_answered.xml", hold_ms=2000, calls=6)
    await callers.finish()  # the callers the line refused count as SIPp's failed calls
    sent = set(re.findall(r"^Call-ID: (\S+)", callers.messages(), re.MULTILINE))
    assert len(sent) == 6
    rows = await _calls(hub.db, expected=6)
    assert sorted(c.call_key for c in rows) == sorted(f"sip:{i}" for i in sent)  # none lost
    answered = [c for c in rows if c.disposition == "answered"]
    missed = [c for c in rows if c.disposition != "answered"]
    call_backs = [t for t in await _tasks(hub.db) if t.kind == "call_back"]
    assert answered, [c.disposition for c in rows]
    assert {c.disposition for c in missed} <= {"missed", "busy"}
    assert len(call_backs) == len(missed)  # one call back for each caller nobody took
    logging.getLogger(__name__).info(
        "6 callers at once: %d answered, %d called back", len(answered), len(missed)
    )


async def test_garbage_changes_nothing_and_the_line_still_answers(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna")
    await start({hub.managers[0]: anna})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for junk in (
            b"\x00\xff\xfe garbage \x01" * 20,
            b"INVITE sip:office@127.0.0.1 SIP/2.0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nCall-ID: nothing\r\n\r\n",
            b"INVITE sip:office@127.0.0.1 SIP/2.0\r\nFrom: <sip:1@x>\r\nCall-ID: x\r\n"
            b"Content-Length: 99999\r\n\r\nv=0",
        ):
            sock.sendto(junk, ("127.0.0.1", hub.line_port))
    await asyncio.sleep(0.5)
    assert await count_rows(hub.db, Call) == 0
    assert await count_rows(hub.db, Message) == 0
    await _ok(hub.client("client", "caller_answered.xml"))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert call.disposition == "answered"


async def test_click_to_call_rings_the_manager_then_the_client(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna")
    client_phone = Sipp.phone(hub.workdir, "client", "client_answers_hangs_up.xml", hold_ms=500)
    hub.processes.append(client_phone)
    api = await start(
        {hub.managers[0]: anna},
        dial_template=f"sip:{{number}}@127.0.0.1:{client_phone.port}",
    )
    headers = {"Authorization": f"Bearer {await api_token(hub.db)}"}
    ingest = IngestService(hub.db, hub.clock, IngestPolicy())
    lead = await ingest.ingest(inbound(phone("8 916 123-45-67")))
    answer = await api.post(
        "/api/v1/calls",
        json={"contact_id": lead.contact_id, "manager_id": hub.managers[0]},
        headers=headers,
    )
    assert answer.status == 202, await answer.text()
    key = (await answer.json())["call_key"]
    await _ok(client_phone)
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert (call.call_key, call.direction, call.disposition) == (key, "out", "answered")
    assert call.callee == "+79161234567"
    assert call.caller != "+79161234567"  # our side of the call, not the client's number
    assert call.contact_id == lead.contact_id
    listed = await api.get(f"/api/v1/calls?contact_id={lead.contact_id}", headers=headers)
    assert listed.status == 200
    assert [c["call_key"] for c in (await listed.json())["items"]] == [key]
    nobody = await api.post("/api/v1/calls", json={"contact_id": lead.contact_id}, headers=headers)
    assert nobody.status == 400


async def _one(db: Database, model: type[Any], row_id: int) -> Any:
    found = await db.read(lambda s: s.get(model, row_id))
    assert found is not None
    return found


async def test_the_manager_who_answers_owns_the_call_and_it_counts_as_a_response(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory(ring_timeout_seconds=1)
    anna = hub.phone("anna", "manager_ringing.xml")  # routing's choice: she does not answer
    boris = hub.phone("boris")
    await start({hub.managers[0]: anna, hub.managers[1]: boris})
    await _ok(hub.client("client", "caller_answered.xml", hold_ms=300))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    await _ok(boris)
    assert (call.disposition, call.manager_id) == ("answered", hub.managers[1])
    conversation = await _one(hub.db, Conversation, call.conversation_id)
    assert conversation.assignee_id == hub.managers[1]  # not anna's any more
    assert conversation.first_response_at == call.answered_at  # the call was the response
    deal = await hub.db.read(lambda s: s.scalars(select(Deal)).one())
    assert deal.owner_id == hub.managers[1]
    contact = await _one(hub.db, Contact, call.contact_id)
    assert contact.owner_id == hub.managers[1]
    tasks = await _tasks(hub.db)
    assert not [t for t in tasks if t.kind in ("call", "call_back")]  # nobody to call back
    assert not [t for t in tasks if t.assignee_id == hub.managers[0]]


async def test_a_withheld_number_leaves_a_missed_call_on_a_record_of_its_own(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna", "manager_ringing.xml")
    await start({hub.managers[0]: anna})
    await _ok(hub.client("first", "caller_anonymous_cancel.xml", hold_ms=800))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert (call.disposition, call.caller) == ("missed", "anonymous")
    assert call.manager_id == hub.managers[0]
    conversation = await _one(hub.db, Conversation, call.conversation_id)
    assert conversation.assignee_id == hub.managers[0]  # in anna's inbox
    contact = await _one(hub.db, Contact, call.contact_id)
    assert contact.merged_into_id is None
    assert await count_rows(hub.db, ContactIdentity) == 0  # no number: nothing to match or dial
    text = await hub.db.read(lambda s: s.scalars(select(Message.text)).one())
    assert text == "Missed call from a withheld number, 0:00"
    assert not [t for t in await _tasks(hub.db) if t.kind == "call_back"]


async def test_a_voicemail_is_a_finished_wav_as_long_as_the_caller_spoke(
    hub_factory: Factory,
) -> None:
    hub, start = await hub_factory()
    client = await start({}, open_now=False)
    _speech(hub.workdir / "client", 3.0)
    await _ok(hub.client("client", "caller_speaks.xml", hold_ms=3000))
    (call,) = await _calls(hub.db)
    assert call.disposition == "voicemail"
    assert call.voicemail is not None
    stored = hub.media / call.voicemail["storage_key"]
    with wave.open(str(stored), "rb") as recording:  # refuses a header still sized 0
        frames, rate = recording.getnframes(), recording.getframerate()
        audio = recording.readframes(frames)
    assert 2.0 <= frames / rate <= 4.5, (frames, rate)  # about the 3 s SIPp spoke
    assert len(audio) == frames * 2
    assert struct.unpack("<I", stored.read_bytes()[4:8])[0] == stored.stat().st_size - 8
    samples = struct.unpack(f"<{frames}h", audio)
    assert max(abs(x) for x in samples) > 1000  # the tone, not silence
    message = await hub.db.read(lambda s: s.scalars(select(Message)).one())
    token = await api_token(hub.db)
    download = await client.get(
        f"/api/v1/messages/{message.id}/attachments/0", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "audio/wav"  # the inbox plays it
    assert download.headers["Content-Disposition"].startswith("inline;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
