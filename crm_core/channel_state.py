"""What channels tell the core besides new messages: reading positions, edits, and
identities that can no longer be reached."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from crm_core import tables as t
from crm_core.contracts import Checkpoint, Edit, IdentityRef
from crm_core.enums import Direction
from crm_core.fastsql import Prepared, Raw
from crm_core.journal import Journal
from crm_core.models import ChannelAccount, ContactIdentity, Message, MessageRevision
from crm_core.snapshots import MessageSnapshot

_UPDATE_CHECKPOINT = Prepared(
    update(t.checkpoints)
    .where(
        t.checkpoints.c.channel_account_id == bindparam("account"),
        t.checkpoints.c.key == bindparam("key"),
    )
    .values(
        value=bindparam("value", type_=t.checkpoints.c.value.type),
        updated_at=bindparam("now", type_=t.checkpoints.c.updated_at.type),
    )
)
_INSERT_CHECKPOINT = Prepared.insert(
    t.checkpoints, ["channel_account_id", "key", "value", "updated_at"]
)


def save_checkpoint(raw: Raw, account_id: int, checkpoint: Checkpoint, now: datetime) -> None:
    params = {"account": account_id, "key": checkpoint.key, "value": checkpoint.value, "now": now}
    _UPDATE_CHECKPOINT.execute(raw, params)
    if raw.cursor.rowcount == 0:
        _INSERT_CHECKPOINT.execute(
            raw,
            {
                "channel_account_id": account_id,
                "key": checkpoint.key,
                "value": checkpoint.value,
                "updated_at": now,
            },
        )


def load_checkpoint(
    session: Session, *, channel: str, channel_account: str, key: str
) -> str | None:
    return session.scalar(
        select(t.checkpoints.c.value)
        .join(ChannelAccount, ChannelAccount.id == t.checkpoints.c.channel_account_id)
        .where(
            ChannelAccount.channel == channel,
            ChannelAccount.key == channel_account,
            t.checkpoints.c.key == key,
        )
    )


def apply_edit(session: Session, edit: Edit, journal: Journal) -> bool:
    """Replace the text of the stored inbound message, keeping the old text as a revision."""
    message = session.scalar(
        select(Message)
        .join(ChannelAccount, ChannelAccount.id == Message.channel_account_id)
        .where(
            ChannelAccount.channel == edit.channel.value,
            ChannelAccount.key == edit.channel_account,
            Message.direction == Direction.INBOUND,
            Message.external_id == edit.external_id,
        )
        .with_for_update()
    )
    if message is None:
        return False
    if message.text == edit.text:
        return True
    session.add(
        MessageRevision(message_id=message.id, text=message.text, replaced_at=edit.edited_at)
    )
    message.text = edit.text
    session.flush()
    journal.recorded_and_emitted(
        "message.edited",
        "message",
        message.id,
        {"message_id": message.id, "conversation_id": message.conversation_id},
        event_key=f"{message.id}:{int(edit.edited_at.timestamp() * 1_000_000)}",
        about=MessageSnapshot.of(message, edit.channel.value),
    )
    return True


def mark_unreachable(
    session: Session, identity: IdentityRef, reason: str, journal: Journal
) -> bool:
    """Flag the identity; the inbox shows it, and replies to it are refused until it writes."""
    row = session.scalar(
        select(ContactIdentity)
        .where(ContactIdentity.kind == identity.kind.value, ContactIdentity.value == identity.value)
        .with_for_update()
    )
    if row is None:
        return False
    row.unreachable_at = journal.now
    row.unreachable_reason = reason[:500]
    session.flush()
    journal.recorded_and_emitted(
        "identity.unreachable",
        "contact",
        row.contact_id,
        {"contact_id": row.contact_id, "kind": row.kind, "value": row.value, "reason": reason},
        event_key=journal.occurrence(row.id),  # each flagging is its own occurrence
    )
    return True


def clear_unreachable(
    session: Session, journal: Journal, contact_id: int, identity_id: int
) -> ContactIdentity | None:
    """A manager's word that the identity can be reached again (the client unblocked the
    bot, the mailbox is back): replies may use it. None when the contact has no such
    identity; clearing one that is not flagged changes nothing."""
    row = session.scalar(
        select(ContactIdentity)
        .where(ContactIdentity.id == identity_id, ContactIdentity.contact_id == contact_id)
        .with_for_update()
    )
    if row is None or row.unreachable_at is None:
        return row
    payload = {
        "contact_id": row.contact_id,
        "identity_id": row.id,
        "kind": row.kind,
        "value": row.value,
        "reason": row.unreachable_reason,
        "unreachable_at": row.unreachable_at.isoformat(),
    }
    row.unreachable_at = None
    row.unreachable_reason = None
    session.flush()
    journal.recorded_and_emitted(
        "identity.unreachable_cleared",
        "contact",
        row.contact_id,
        payload,
        event_key=journal.occurrence(row.id),
    )
    return row
