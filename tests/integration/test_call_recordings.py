"""Recordings of answered calls (SQLite and PostgreSQL): stored on the call and its message,
removed from the file store after the line's ``recording_retention_days`` (the hub's clock
moves, nothing sleeps), and kept forever with 0."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.sip.config import LineConfig
from connectors.store import FileStore
from crm_core.clock import ManualClock
from crm_core.contracts import Attachment, CallRecord, IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import CallDisposition, Channel, Direction, IdentityKind
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.models import AuditEntry, Call, Message
from hub.sip_recordings import RecordingRetention

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


async def _answered(
    db: Database, clock: ManualClock, store: FileStore, call_id: str, line: str = "office"
) -> Attachment:
    """An answered call on ``line`` with a recording (its own bytes), stored through ingest."""
    data = b"RIFF" + call_id.encode() * 100
    key = await store.put(data, "recording")
    recording = Attachment("recording.wav", "audio/wav", len(data), storage_key=key)
    record = CallRecord(
        line=line,
        call_id=call_id,
        caller="+79161234567",
        callee=f"sip:{line}@127.0.0.1",
        direction=Direction.INBOUND,
        started_at=clock.now(),
        disposition=CallDisposition.ANSWERED,
        answered_at=clock.now() + timedelta(seconds=3),
        ended_at=clock.now() + timedelta(seconds=60),
        recording=recording,
    )
    await IngestService(db, clock, IngestPolicy()).ingest(
        InboundMessage(
            channel=Channel.PHONE,
            channel_account=line,
            external_id=record.key,
            identities=(IdentityRef(IdentityKind.PHONE, "+79161234567"),),
            occurred_at=clock.now(),
            text=record.summary(),
            attachments=(recording,),
            call=record,
        )
    )
    return recording


async def _call(db: Database, call_id: str) -> tuple[Call, Message]:
    def work(session: Session) -> tuple[Call, Message]:
        call = session.scalars(select(Call).where(Call.call_key == f"sip:{call_id}")).one()
        message = session.get(Message, call.message_id)
        assert message is not None
        return call, message

    return await db.read(work)


async def test_a_recording_is_removed_after_the_retention_and_marked_on_the_call(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock(START)
    store = FileStore(tmp_path / "media")
    old = await _answered(db, clock, store, "old@client")
    clock.advance(timedelta(days=30))
    new = await _answered(db, clock, store, "new@client")
    assert old.storage_key is not None
    assert new.storage_key is not None
    call, message = await _call(db, "old@client")
    assert call.recording is not None
    assert call.recording["storage_key"] == old.storage_key
    assert message.attachments[0]["storage_key"] == old.storage_key

    lines = (LineConfig("office", recording_retention_days=90),)
    retention = RecordingRetention(db, clock, store, lines)
    clock.set(START + timedelta(days=89, hours=23))
    assert await retention.run_once() == 0  # not 90 days old yet
    assert store.path(old.storage_key).exists()

    clock.set(START + timedelta(days=90, minutes=1))
    assert await retention.run_once() == 1
    assert not store.path(old.storage_key).exists()
    assert store.path(new.storage_key).exists()  # 60 days old: kept
    call, message = await _call(db, "old@client")
    assert call.recording is None
    (attachment,) = message.attachments
    assert attachment["storage_key"] is None
    assert "removed after 90 days" in attachment["failure"]
    assert attachment["name"] == "recording.wav"
    kept, _ = await _call(db, "new@client")
    assert kept.recording is not None
    actions = await db.read(
        lambda s: list(
            s.scalars(
                select(AuditEntry.action).where(
                    AuditEntry.entity_type == "call", AuditEntry.entity_id == call.id
                )
            )
        )
    )
    assert "call.recording_removed" in actions
    assert await retention.run_once() == 0  # a second pass finds nothing more

    clock.advance(timedelta(days=31))
    assert await retention.run_once() == 1
    assert not store.path(new.storage_key).exists()


async def test_each_line_keeps_its_own_recordings_zero_days_is_forever(
    db: Database, tmp_path: Path
) -> None:
    clock = ManualClock(START)
    store = FileStore(tmp_path / "media")
    office = await _answered(db, clock, store, "a@client", line="office")
    forever = await _answered(db, clock, store, "b@client", line="archive")
    lines = (
        LineConfig("office", recording_retention_days=7),
        LineConfig("archive", recording_retention_days=0),
    )
    clock.advance(timedelta(days=3650))
    assert await RecordingRetention(db, clock, store, lines).run_once() == 1
    assert office.storage_key is not None
    assert forever.storage_key is not None
    assert not store.path(office.storage_key).exists()
    assert store.path(forever.storage_key).exists()
    call, _ = await _call(db, "b@client")
    assert call.recording is not None
    assert not RecordingRetention(db, clock, store, lines[1:]).needed  # no loop at all
