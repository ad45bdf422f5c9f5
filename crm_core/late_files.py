"""Files that arrive after their message: a channel stored the message with an attachment
marked failed (``Attachment.failure``) and fetched the file later.

:func:`fill_attachment` fills in the stored attachment (storage key, size, content type),
journaled, and emits ``message.edited`` so that the inbox shows the file at once (the
timeline re-fetches a conversation on any event naming it). :class:`LateFiles` keeps the
files that wait for another attempt as parked items (:mod:`crm_core.parked`) of one channel,
so that an admin sees them in ``GET /api/v1/parked`` and may retry one by hand.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.orm import Session

from crm_core import parked
from crm_core.clock import Clock
from crm_core.contracts import Attachment
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.models import ChannelAccount, Message
from crm_core.snapshots import MessageSnapshot

ACTOR = "system:files"
BATCH = 20
UPDATE_PREFIX = "update:"  # the keys of a channel's parked updates, not files
LEASE = timedelta(minutes=5)  # a claimed file is not claimed again by another process before


def fill_attachment(
    session: Session, journal: Journal, message_id: int, index: int, attachment: Attachment
) -> bool:
    """Put the fetched file in place of the failed attachment ``index`` of the message.

    The stored name is kept; the storage key, size and content type are the fetched ones
    and the failure goes. False (nothing changed) when the message or the attachment is
    not there, or the attachment already has its file."""
    message = session.get(Message, message_id, with_for_update=True)
    if message is None or not 0 <= index < len(message.attachments or []):
        return False
    stored = [dict(a) for a in message.attachments]
    current = stored[index]
    if current.get("storage_key") is not None or attachment.storage_key is None:
        return False
    filled = {
        **current,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "storage_key": attachment.storage_key,
    }
    filled.pop("failure", None)
    stored[index] = filled
    message.attachments = stored  # a new list: the JSON column sees the change
    session.flush()
    account = session.get(ChannelAccount, message.channel_account_id)
    ids = {"message_id": message.id, "conversation_id": message.conversation_id}
    journal.record(
        "message.attachment_stored",
        "message",
        message.id,
        {**ids, "attachment": index, "storage_key": attachment.storage_key},
    )
    journal.emit(
        "message.edited",
        journal.occurrence(message.id, "attachment", index),
        ids,
        about=MessageSnapshot.of(message, account.channel if account is not None else None),
    )
    return True


@dataclass(frozen=True, slots=True)
class LateFiles:
    """One channel's files waiting for another attempt, as its parked items."""

    db: Database
    clock: Clock
    channel: str
    max_attempts: int
    on_commit: Callable[[], None] | None = None  # wakes the relay: an event was written

    async def failed(
        self,
        account: str,
        item_key: str,
        reason: str,
        healable: bool,
        detail: Mapping[str, str | None],
    ) -> bool:
        """One more failure of the file; True while it will be tried again."""
        failure = parked.Failure(self.channel, account, item_key, reason, healable, dict(detail))
        now = self.clock.now()

        def work(session: Session) -> bool:
            row = parked.park(session, failure, now, self.max_attempts)
            return row.status == parked.RETRYING

        return await self.db.write(work)

    async def due(self) -> list[parked.Due]:
        now = self.clock.now()
        # the channel's poisoned updates ("update:<id>", crm_core.poisoned) are not files
        return await self.db.write(
            lambda s: parked.claim_due(s, self.channel, now, BATCH, LEASE, not_prefix=UPDATE_PREFIX)
        )

    async def fetched(
        self, account: str, item_key: str, message_id: int, index: int, attachment: Attachment
    ) -> bool:
        """The file came at last: fill in the attachment and forget the parked item, in one
        transaction."""

        def work(session: Session) -> bool:
            journal = Journal(ACTOR, self.clock.now())
            changed = fill_attachment(session, journal, message_id, index, attachment)
            parked.taken(session, self.channel, account, item_key)
            journal.flush(session)
            return changed

        changed = await self.db.write(work)
        if changed and self.on_commit is not None:
            self.on_commit()
        return changed
