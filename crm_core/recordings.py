"""The retention of call recordings: a line keeps an answered call's recording for its
``recording_retention_days``, then the file leaves the store and the record says so.

:func:`expired` finds the recordings of one line started before a moment;
:func:`mark_removed` (after the files are deleted) clears ``calls.recording`` and turns
the message's attachment into a removed one (no storage key, a ``failure`` that says
why), journaled as ``call.recording_removed``. Deleting the file first and marking the
record after keeps the order safe: a failed transaction leaves a record whose file is
gone, which the next pass marks; never a kept file that nothing points to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.enums import Channel
from crm_core.journal import Journal
from crm_core.models import Call, ChannelAccount, Message

BATCH = 200  # recordings removed in one transaction


@dataclass(frozen=True, slots=True)
class StoredRecording:
    call_id: int
    storage_key: str | None


def expired(
    session: Session, line: str, before: datetime, limit: int = BATCH
) -> list[StoredRecording]:
    """The recordings of the line's calls that started before ``before``, oldest first."""
    rows = session.execute(
        select(Call.id, Call.recording)
        .join(ChannelAccount, ChannelAccount.id == Call.channel_account_id)
        .where(
            ChannelAccount.channel == Channel.PHONE.value,
            ChannelAccount.key == line,
            Call.recording.is_not(None),
            Call.started_at < before,
        )
        .order_by(Call.id)
        .limit(limit)
    ).all()
    found = []
    for call_id, recording in rows:
        key = recording.get("storage_key") if isinstance(recording, dict) else None
        found.append(StoredRecording(call_id, key if isinstance(key, str) else None))
    return found


def mark_removed(
    session: Session, journal: Journal, removed: list[StoredRecording], reason: str
) -> int:
    """The recordings' files are deleted: the calls and their messages say so. Answers
    how many calls changed."""
    changed = 0
    for item in removed:
        row = session.get(Call, item.call_id, with_for_update=True)
        if row is None or row.recording is None:
            continue
        row.recording = None
        message = session.get(Message, row.message_id) if row.message_id is not None else None
        index = None
        if message is not None and item.storage_key is not None:
            stored = [dict(a) for a in message.attachments or []]
            for place, attachment in enumerate(stored):
                if attachment.get("storage_key") == item.storage_key:
                    attachment["storage_key"] = None
                    attachment["failure"] = reason
                    index = place
            message.attachments = stored  # a new list: the JSON column sees the change
        journal.record(
            "call.recording_removed",
            "call",
            row.id,
            {"storage_key": item.storage_key, "message_id": row.message_id, "attachment": index},
        )
        changed += 1
    session.flush()
    return changed
