"""Recordings of answered calls over real SIP: the client's SIPp plays one tone and the
manager's phone another; the stored WAV must hold both (testbed.md's SIPp recipes)."""

from __future__ import annotations

import logging
import math
import struct
import wave
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import Message
from tests.factories import api_token, inbound, phone
from tests.integration.sip import test_calls
from tests.integration.sip.peers import Sipp
from tests.integration.sip.test_calls import Factory, _calls, _ok, _speech

hub_factory = test_calls.hub_factory  # the SIP tests' fixture: a hub with one line

pytestmark = pytest.mark.timeout(90)
log = logging.getLogger(__name__)
CLIENT_HZ = 440  # what the client says
MANAGER_HZ = 1000  # what the manager says
QUIET_HZ = 700  # nobody says this: the floor of noise and distortion
WINDOW_SECONDS = 0.25


def tone(samples: Sequence[int], rate: int, hertz: float) -> float:
    """The amplitude of the ``hertz`` component of ``samples`` (Goertzel's algorithm: one
    bin of a Fourier transform; a full-scale sine of amplitude A measures about A)."""
    coefficient = 2 * math.cos(2 * math.pi * hertz / rate)
    before, last = 0.0, 0.0
    for sample in samples:
        before, last = last, sample + coefficient * last - before
    power = last * last + before * before - coefficient * last * before
    return 2 * math.sqrt(max(power, 0.0)) / len(samples)


def both_sides(samples: Sequence[int], rate: int) -> tuple[int, list[tuple[float, float, float]]]:
    """How many quarter-second windows hold both tones, well above the quiet frequency;
    and each window's amplitudes (client, manager, quiet)."""
    size = int(rate * WINDOW_SECONDS)
    levels = []
    for start in range(0, len(samples) - size + 1, size):
        window = samples[start : start + size]
        levels.append(
            (
                tone(window, rate, CLIENT_HZ),
                tone(window, rate, MANAGER_HZ),
                tone(window, rate, QUIET_HZ),
            )
        )
    count = sum(
        1
        for client, manager, quiet in levels
        if client > 300 and manager > 300 and min(client, manager) > 5 * max(quiet, 1.0)
    )
    return count, levels


async def test_an_answered_call_is_recorded_with_both_sides(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    _speech(hub.workdir / "anna", 4.0, MANAGER_HZ)  # before her SIPp starts in that folder
    anna = hub.phone("anna", "manager_speaks.xml")
    api = await start({hub.managers[0]: anna})
    _speech(hub.workdir / "client", 3.0, CLIENT_HZ)
    await _ok(hub.client("client", "caller_speaks.xml", hold_ms=3000))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert call.disposition == "answered"
    assert call.voicemail is None
    assert call.recording is not None
    assert call.recording["name"] == "recording.wav"
    assert call.recording["content_type"] == "audio/wav"
    stored = hub.media / call.recording["storage_key"]
    assert call.recording["storage_key"].startswith("recording/")
    with wave.open(str(stored), "rb") as recording:  # refuses a header still sized 0
        frames, rate = recording.getnframes(), recording.getframerate()
        assert (recording.getnchannels(), recording.getsampwidth()) == (1, 2)
        audio = recording.readframes(frames)
    assert struct.unpack("<I", stored.read_bytes()[4:8])[0] == stored.stat().st_size - 8
    assert 2.0 <= frames / rate <= 4.5, (frames, rate)  # the ~3 s the two talked
    samples = struct.unpack(f"<{frames}h", audio)
    windows, levels = both_sides(samples, rate)
    log.info(
        "recording: %.2f s at %d Hz; %d of %d windows hold both tones; levels %s",
        frames / rate,
        rate,
        windows,
        len(levels),
        [tuple(round(x) for x in level) for level in levels],
    )
    assert windows >= 4, levels  # a second and more of the two talking at once
    # The call's message carries it: the inbox plays it from the attachment download.
    message = await hub.db.read(lambda s: s.scalars(select(Message)).one())
    (attachment,) = message.attachments
    assert attachment["storage_key"] == call.recording["storage_key"]
    token = await api_token(hub.db)
    download = await api.get(
        f"/api/v1/messages/{message.id}/attachments/0", headers={"Authorization": f"Bearer {token}"}
    )
    assert download.status == 200
    assert download.headers["Content-Type"] == "audio/wav"
    assert download.headers["Content-Disposition"].startswith("inline;")
    assert await download.read() == stored.read_bytes()
    listed = await api.get("/api/v1/calls", headers={"Authorization": f"Bearer {token}"})
    (item,) = (await listed.json())["items"]
    assert item["recording_url"] == f"/api/v1/messages/{message.id}/attachments/0"
    assert item["voicemail_url"] is None


async def test_record_calls_off_stores_no_recording(hub_factory: Factory) -> None:
    hub, start = await hub_factory(record_calls=False)
    anna = hub.phone("anna")
    await start({hub.managers[0]: anna})
    await _ok(hub.client("client", "caller_answered.xml", hold_ms=1000))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert call.disposition == "answered"
    assert call.recording is None
    message = await hub.db.read(lambda s: s.scalars(select(Message)).one())
    assert message.attachments == []
    assert not (hub.media / "recording").exists()


async def test_a_missed_call_leaves_no_recording(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    anna = hub.phone("anna", "manager_ringing.xml")
    await start({hub.managers[0]: anna})
    await _ok(hub.client("client", "caller_cancel.xml", hold_ms=800))
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert call.disposition == "missed"
    assert call.recording is None
    message = await hub.db.read(lambda s: s.scalars(select(Message)).one())
    assert message.attachments == []
    assert not (hub.media / "recording").exists()


async def test_a_click_to_call_is_recorded_too(hub_factory: Factory) -> None:
    hub, start = await hub_factory()
    _speech(hub.workdir / "anna", 4.0, MANAGER_HZ)
    anna = hub.phone("anna", "manager_speaks.xml")  # the hub rings her first, then the client
    client_phone = Sipp.phone(hub.workdir, "client", "client_answers_hangs_up.xml", hold_ms=1500)
    hub.processes.append(client_phone)
    api = await start(
        {hub.managers[0]: anna}, dial_template=f"sip:{{number}}@127.0.0.1:{client_phone.port}"
    )
    lead = await IngestService(hub.db, hub.clock, IngestPolicy()).ingest(
        inbound(phone("8 916 123-45-67"))
    )
    answer = await api.post(
        "/api/v1/calls",
        json={"contact_id": lead.contact_id, "manager_id": hub.managers[0]},
        headers={"Authorization": f"Bearer {await api_token(hub.db)}"},
    )
    assert answer.status == 202, await answer.text()
    await _ok(client_phone)
    (call,) = await _calls(hub.db)
    await _ok(anna)
    assert (call.direction, call.disposition) == ("out", "answered")
    assert call.recording is not None
    with wave.open(str(hub.media / call.recording["storage_key"]), "rb") as recording:
        frames, rate = recording.getnframes(), recording.getframerate()
        samples = struct.unpack(f"<{frames}h", recording.readframes(frames))
    assert 0.5 <= frames / rate <= 3.0, (frames, rate)  # the 1.5 s the two were connected
    assert tone(samples, rate, MANAGER_HZ) > 10 * tone(samples, rate, QUIET_HZ)  # she spoke
