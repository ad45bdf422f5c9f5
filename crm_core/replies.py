"""Replies: a manager's message is stored as queued and leaves through the outbox.

:func:`queue_reply` writes the outbound :class:`Message` (``queued``) and a
``send.<channel>`` outbox row in one transaction. :class:`SendDispatcher` is the
relay's handler for those rows: it hands an :class:`OutboundMessage` to the
channel's :class:`ChannelSender` and records the outcome on the message
(``sent`` with the channel's id, or ``failed`` with the reason), announcing each
change as a ``message.status_changed`` event.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.channel_state import mark_unreachable
from crm_core.clock import Clock
from crm_core.contracts import (
    Attachment,
    ChannelSender,
    IdentityRef,
    OutboundMessage,
    PermanentSendError,
)
from crm_core.conversation_actions import announce_reassigned, move_open_tasks
from crm_core.db import Database
from crm_core.enums import (
    AuthorKind,
    Channel,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    IdentityKind,
)
from crm_core.journal import Journal
from crm_core.models import ChannelAccount, ContactIdentity, Conversation, Message
from crm_core.outbox import OutboxItem
from crm_core.snapshots import MessageSnapshot

log = logging.getLogger(__name__)
SEND_TOPIC_PREFIX = "send."

# Which identities a channel can reach a contact by.
REACHABLE: dict[Channel, tuple[IdentityKind, ...]] = {
    Channel.TELEGRAM: (IdentityKind.TELEGRAM,),
    Channel.EMAIL: (IdentityKind.EMAIL,),
    Channel.PHONE: (IdentityKind.PHONE,),
    Channel.SITE_CHAT: (IdentityKind.SITE_VISITOR,),
}


class ReplyError(ValueError):
    """A reply that cannot be queued; the message says why."""


def queue_reply(
    session: Session,
    journal: Journal,
    conversation_id: int,
    text: str,
    *,
    author_manager_id: int | None = None,
    attachments: tuple[Attachment, ...] = (),
    via_account_id: int | None = None,
    to: IdentityRef | None = None,
    subject: str | None = None,
) -> Message:
    """Store the reply as queued and put its send in the outbox, in this transaction.

    It leaves through the conversation's channel account, or ``via_account_id`` (a site
    chat's reply mailed to a visitor who left), to every identity of the contact that
    channel reaches, or only ``to``.
    """
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise LookupError(f"conversation {conversation_id} not found")
    account = session.get(ChannelAccount, via_account_id or conversation.channel_account_id)
    if account is None:
        raise LookupError(f"channel account {via_account_id} not found")
    channel = Channel(account.channel)
    kinds = REACHABLE.get(channel, ())
    recipients = [
        IdentityRef(IdentityKind(i.kind), i.value)
        for i in session.scalars(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == conversation.contact_id)
            .order_by(ContactIdentity.id)
        )
        if i.kind in kinds and i.unreachable_at is None
    ]
    if to is not None:
        recipients = [r for r in recipients if r == to]
    if not recipients:
        raise ReplyError(
            f"the contact has no identity that the {channel.value} channel can reach "
            "(or the client blocked it)"
        )
    last_inbound = session.scalar(
        select(Message.external_id)
        .where(
            Message.conversation_id == conversation.id,
            Message.channel_account_id == account.id,
            Message.direction == Direction.INBOUND,
        )
        .order_by(Message.id.desc())
        .limit(1)
    )
    message = Message(
        conversation_id=conversation.id,
        channel_account_id=account.id,
        direction=Direction.OUTBOUND,
        author_kind=AuthorKind.MANAGER if author_manager_id else AuthorKind.SYSTEM,
        author_manager_id=author_manager_id,
        text=text,
        attachments=[a.as_json() for a in attachments],
        external_id=None,
        delivery_status=DeliveryStatus.QUEUED,
        raw_ref=None,
        occurred_at=journal.now,
        created_at=journal.now,
    )
    session.add(message)
    if author_manager_id and conversation.first_response_at is None:
        conversation.first_response_at = journal.now
    if conversation.status == ConversationStatus.CLOSED:
        conversation.status = ConversationStatus.OPEN
        conversation.closed_at = None
    conversation.last_message_at = journal.now
    session.flush()
    journal.enqueue(
        SEND_TOPIC_PREFIX + channel.value,
        f"send:{message.id}",
        {
            "message_id": message.id,
            "conversation_id": conversation.id,
            "channel": channel.value,
            "channel_account": account.key,
            "recipients": [{"kind": r.kind.value, "value": r.value} for r in recipients],
            "text": text,
            "attachments": message.attachments,
            "in_reply_to": last_inbound,
            **({"subject": subject} if subject else {}),
        },
    )
    journal.recorded_and_emitted(
        "message.created",
        "message",
        message.id,
        {
            "message_id": message.id,
            "conversation_id": conversation.id,
            "contact_id": conversation.contact_id,
            "channel": channel.value,
            "direction": "out",
        },
        about=MessageSnapshot.of(message, channel.value),
    )
    return message


def outbound_from(payload: Mapping[str, Any]) -> OutboundMessage:
    return OutboundMessage(
        message_id=int(payload["message_id"]),
        conversation_id=int(payload["conversation_id"]),
        channel=Channel(payload["channel"]),
        channel_account=str(payload["channel_account"]),
        recipients=tuple(
            IdentityRef(IdentityKind(r["kind"]), str(r["value"])) for r in payload["recipients"]
        ),
        text=str(payload["text"]),
        attachments=tuple(Attachment(**a) for a in payload.get("attachments") or ()),
        in_reply_to=payload.get("in_reply_to"),
        subject=payload.get("subject"),
    )


class SendDispatcher:
    """The outbox handler of ``send.*`` rows: one sender per channel."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        senders: Mapping[Channel, ChannelSender],
        max_attempts: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self._senders = senders  # live: connectors register as they start
        self._max_attempts = max_attempts

    async def __call__(self, item: OutboxItem) -> None:
        outbound = outbound_from(item.payload)
        sender = self._senders.get(outbound.channel)
        try:
            if sender is None:
                raise PermanentSendError(f"no connector runs for the {outbound.channel} channel")
            receipt = await sender.send(outbound)
        except PermanentSendError as exc:
            await self._record(
                outbound.message_id,
                DeliveryStatus.FAILED,
                None,
                str(exc),
                unreachable=getattr(exc, "identity", None),
            )
            return
        except Exception as exc:
            if item.attempt >= self._max_attempts:
                await self._record(
                    outbound.message_id,
                    DeliveryStatus.FAILED,
                    None,
                    f"gave up after {item.attempt} attempts: {exc}",
                )
                return
            raise
        await self._record(outbound.message_id, DeliveryStatus.SENT, receipt.external_id, None)

    async def _record(
        self,
        message_id: int,
        status: DeliveryStatus,
        external_id: str | None,
        error: str | None,
        unreachable: IdentityRef | None = None,
    ) -> None:
        def work(session: Session) -> None:
            journal = Journal("system:outbox", self._clock.now())
            if unreachable is not None and error is not None:
                mark_unreachable(session, unreachable, error, journal)
            record_delivery(
                session, journal, message_id, status, external_id=external_id, error=error
            )

        await self._db.write(work)


def record_delivery(
    session: Session,
    journal: Journal,
    message_id: int,
    status: DeliveryStatus,
    *,
    external_id: str | None = None,
    error: str | None = None,
) -> None:
    """Set a message's delivery status (a connector's later 'delivered' or 'read' too)."""
    message = session.get(Message, message_id, with_for_update=True)
    if message is None:
        raise LookupError(f"message {message_id} not found")
    message.delivery_status = status.value
    if external_id is not None:
        message.external_id = external_id
    message.delivery_error = error
    payload = {
        "message_id": message.id,
        "conversation_id": message.conversation_id,
        "status": status.value,
        "error": error,
    }
    journal.record("message.status_changed", "message", message.id, payload)
    # A status may come again (a send redelivered, a failure retried): each is its own.
    journal.emit(
        "message.status_changed",
        journal.occurrence(message.id, status.value),
        payload,
        about=MessageSnapshot.of(message),
    )
    journal.flush(session)


def take_conversation(
    session: Session, journal: Journal, conversation_id: int, manager_id: int
) -> Conversation:
    """The first manager to take a conversation offered to all owns it (a race has one winner)."""
    conversation = session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise LookupError(f"conversation {conversation_id} not found")
    if conversation.assignee_id == manager_id:
        return conversation
    if conversation.assignee_id is not None:
        raise ReplyError(f"manager {conversation.assignee_id} has already taken it")
    taken = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.assignee_id.is_(None))
        .values(assignee_id=manager_id, routing_reason="taken by the manager")
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ReplyError("another manager took it first")
    move_open_tasks(session, conversation_id, None, manager_id)
    session.refresh(conversation)
    announce_reassigned(
        journal, conversation, None, journal.occurrence(conversation_id, "taken", manager_id)
    )
    return conversation
