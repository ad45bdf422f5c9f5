"""What a manager does to a conversation from the inbox, besides replying.

Internal notes (messages with direction ``note``: stored, shown to colleagues, never
sent), assignment and transfer, close and reopen, and the read marker behind unread
counts. Each change is audited and announced as an event in its own transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_core.access import Viewer, conversation_scope
from crm_core.enums import AuthorKind, ConversationStatus, DeliveryStatus, Direction, TaskStatus
from crm_core.journal import Journal
from crm_core.models import (
    ChannelAccount,
    Conversation,
    ConversationRead,
    Deal,
    Manager,
    Message,
    Task,
)
from crm_core.snapshots import ConversationSnapshot, MessageSnapshot


class ConversationActionError(ValueError):
    """An action that does not apply (an unknown or inactive manager, ...)."""


def visible_conversation(session: Session, viewer: Viewer, conversation_id: int) -> Conversation:
    """The conversation, locked for the change, if the viewer may see it."""
    conversation = session.scalar(
        select(Conversation)
        .where(Conversation.id == conversation_id, conversation_scope(viewer))
        .with_for_update()
    )
    if conversation is None:
        raise LookupError(f"conversation {conversation_id} not found")
    return conversation


def add_note(
    session: Session, journal: Journal, viewer: Viewer, conversation_id: int, text: str
) -> Message:
    conversation = visible_conversation(session, viewer, conversation_id)
    note = Message(
        conversation_id=conversation.id,
        channel_account_id=conversation.channel_account_id,
        direction=Direction.NOTE,
        author_kind=AuthorKind.MANAGER if viewer.manager_id else AuthorKind.SYSTEM,
        author_manager_id=viewer.manager_id,
        text=text,
        attachments=[],
        external_id=None,
        delivery_status=DeliveryStatus.SENT,  # nothing to deliver
        delivery_error=None,
        raw_ref=None,
        occurred_at=journal.now,
        created_at=journal.now,
    )
    session.add(note)
    session.flush()
    journal.recorded_and_emitted(
        "note.created",
        "message",
        note.id,
        {
            "message_id": note.id,
            "conversation_id": conversation.id,
            "contact_id": conversation.contact_id,
        },
        about=MessageSnapshot.of(note),
    )
    return note


def assign(
    session: Session,
    journal: Journal,
    viewer: Viewer,
    conversation_id: int,
    manager_id: int,
) -> Conversation:
    """Hand the conversation to a manager. Heads and admins assign anything they see; a
    manager transfers a conversation of their own (or an unassigned one) to a colleague."""
    conversation = visible_conversation(session, viewer, conversation_id)
    if not viewer.can_reassign and conversation.assignee_id not in (None, viewer.manager_id):
        raise PermissionError("only its manager, a head of sales or an admin may transfer it")
    target = session.get(Manager, manager_id)
    if target is None or not target.active:
        raise ConversationActionError(f"manager {manager_id} does not exist or is not active")
    previous = conversation.assignee_id
    if previous == manager_id:
        return conversation
    reason = f"assigned by {viewer.name or viewer.actor}"
    conversation.assignee_id = manager_id
    conversation.team_id = target.team_id if target.team_id is not None else conversation.team_id
    conversation.routing_reason = reason
    move_open_tasks(session, conversation_id, previous, manager_id)
    # The deal this conversation opened follows it, unless someone else already owns it.
    for deal in session.scalars(
        select(Deal).where(
            Deal.conversation_id == conversation_id,
            Deal.is_open.is_(True),
            (Deal.owner_id == previous) if previous is not None else Deal.owner_id.is_(None),
        )
    ):
        deal.owner_id = manager_id
        journal.record("deal.reassigned", "deal", deal.id, {"owner_id": manager_id})
    session.flush()
    announce_reassigned(
        journal,
        conversation,
        previous,
        journal.occurrence(conversation_id, f"{previous}>{manager_id}"),
    )
    return conversation


def move_open_tasks(
    session: Session, conversation_id: int, previous: int | None, following: int
) -> None:
    """The conversation's open tasks that were ``previous``'s (or nobody's) follow it."""
    was = Task.assignee_id == previous if previous is not None else Task.assignee_id.is_(None)
    session.execute(
        update(Task)
        .where(Task.conversation_id == conversation_id, Task.status == TaskStatus.OPEN, was)
        .values(assignee_id=following)
    )


def announce_reassigned(
    journal: Journal, conversation: Conversation, previous: int | None, event_key: str
) -> None:
    """Audit and announce that ``conversation`` went from ``previous`` to its assignee."""
    journal.recorded_and_emitted(
        "conversation.reassigned",
        "conversation",
        conversation.id,
        {
            "conversation_id": conversation.id,
            "contact_id": conversation.contact_id,
            "from_manager_id": previous,
            "assignee_id": conversation.assignee_id,
            "reason": conversation.routing_reason,
        },
        event_key=event_key,
        about=ConversationSnapshot.of(conversation),
    )


def set_status(
    session: Session,
    journal: Journal,
    viewer: Viewer,
    conversation_id: int,
    status: ConversationStatus,
) -> Conversation:
    """Close or reopen."""
    conversation = visible_conversation(session, viewer, conversation_id)
    if conversation.status == status:
        return conversation
    before = conversation.status
    conversation.status = status
    conversation.closed_at = journal.now if status == ConversationStatus.CLOSED else None
    session.flush()
    event = (
        "conversation.closed" if status == ConversationStatus.CLOSED else "conversation.reopened"
    )
    journal.recorded_and_emitted(
        event,
        "conversation",
        conversation_id,
        {
            "conversation_id": conversation_id,
            "contact_id": conversation.contact_id,
            "from_status": before,
            "status": status.value,
        },
        event_key=journal.occurrence(conversation_id, status.value),
        about=ConversationSnapshot.of(conversation),
    )
    return conversation


def mark_read(
    session: Session, viewer: Viewer, conversation_id: int, now: datetime
) -> tuple[int, bool]:
    """Everything in the conversation so far counts as read by the viewer; returns the
    last message id read, and whether the viewer's marker moved (False: it was there)."""
    conversation = visible_conversation(session, viewer, conversation_id)
    assert viewer.manager_id is not None
    last = session.scalar(
        select(func.max(Message.id)).where(Message.conversation_id == conversation.id)
    )
    marker = session.get(ConversationRead, (viewer.manager_id, conversation.id))
    if marker is None:
        session.add(
            ConversationRead(
                manager_id=viewer.manager_id,
                conversation_id=conversation.id,
                last_read_message_id=last or 0,
                read_at=now,
            )
        )
        return last or 0, True
    if (last or 0) > marker.last_read_message_id:
        marker.last_read_message_id = last or 0
        marker.read_at = now
        return last or 0, True
    return last or 0, False


def conversation_on(
    session: Session, journal: Journal, viewer: Viewer, conversation_id: int, account_key: str
) -> int:
    """The contact's conversation on another of our channel accounts (the one the manager
    picked to answer by), opened now if the client never wrote there.

    The latest conversation on that account must be one the viewer may see: a manager
    cannot write into a colleague's conversation by choosing its channel (LookupError,
    which the API answers with 404 and nothing written)."""
    source = visible_conversation(session, viewer, conversation_id)
    account = session.scalar(select(ChannelAccount).where(ChannelAccount.key == account_key))
    if account is None:
        raise ConversationActionError(f"no channel account {account_key!r}")
    if account.id == source.channel_account_id:
        return source.id
    existing = session.execute(
        select(Conversation.id, conversation_scope(viewer).label("visible"))
        .where(
            Conversation.contact_id == source.contact_id,
            Conversation.channel_account_id == account.id,
        )
        .order_by(Conversation.id.desc())
        .limit(1)
    ).first()
    if existing is not None:
        # Answering there is writing into that conversation: the same scope as any
        # other action on it (a colleague's conversation is not found).
        if not existing.visible:
            raise LookupError(f"conversation {existing.id} not found")
        return int(existing.id)
    reason = f"opened by {viewer.name or viewer.actor} to answer by {account.channel}"
    conversation = Conversation(
        contact_id=source.contact_id,
        channel_account_id=account.id,
        status=ConversationStatus.OPEN,
        assignee_id=viewer.manager_id or source.assignee_id,
        team_id=source.team_id,
        routing_reason=reason,
        tags=[],
        opened_at=journal.now,
        last_message_at=journal.now,
    )
    session.add(conversation)
    session.flush()
    journal.recorded_and_emitted(
        "conversation.created",
        "conversation",
        conversation.id,
        {
            "conversation_id": conversation.id,
            "contact_id": source.contact_id,
            "channel": account.channel,
            "assignee_id": conversation.assignee_id,
        },
        about=ConversationSnapshot.of(conversation),
    )
    return conversation.id
