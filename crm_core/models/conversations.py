"""Channel accounts, conversations and their messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class ChannelAccount(Base):
    """One door of one channel: a bot, a mailbox, a SIP line, a form source, the API."""

    __tablename__ = "channel_accounts"
    __table_args__ = (UniqueConstraint("channel", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(24))
    key: Mapped[str] = mapped_column(String(120))
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_contact_account", "contact_id", "channel_account_id"),
        Index("ix_conversations_assignee_status", "assignee_id", "status"),
        # The inbox lists conversations by latest activity (last_message_at DESC, id DESC),
        # all of them or one assignee's (a manager's own, the unassigned queue).
        Index("ix_conversations_last_message_at", "last_message_at", "id"),
        Index("ix_conversations_assignee_recent", "assignee_id", "last_message_at", "id"),
        # The unread counts per view read the conversations that are not closed.
        Index(
            "ix_conversations_not_closed",
            "assignee_id",
            "team_id",
            "status",
            sqlite_where=text("status != 'closed'"),
            postgresql_where=text("status != 'closed'"),
        ),
        Index("ix_conversations_opened_at", "opened_at"),  # reports: opened in a period
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"))
    channel_account_id: Mapped[int] = mapped_column(Id, ForeignKey("channel_accounts.id"))
    status: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    team_id: Mapped[int | None] = mapped_column(Id, ForeignKey("teams.id"))
    routing_reason: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime())
    first_response_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_message_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # The natural idempotency key (DESIGN.md rule 2).
        UniqueConstraint("channel_account_id", "direction", "external_id"),
        # Managers' replies by time, for the activity report: partial, so that the clients'
        # messages (the ingest's hot path) never write to it.
        Index(
            "ix_messages_manager_replies",
            "created_at",
            "author_manager_id",
            "channel_account_id",
            sqlite_where=text("author_manager_id IS NOT NULL"),
            postgresql_where=text("author_manager_id IS NOT NULL"),
        ),
        # Unread: a conversation's inbound messages after the reader's marker.
        Index("ix_messages_conversation_direction", "conversation_id", "direction", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(Id, ForeignKey("conversations.id"), index=True)
    channel_account_id: Mapped[int] = mapped_column(Id, ForeignKey("channel_accounts.id"))
    direction: Mapped[str] = mapped_column(String(4))
    author_kind: Mapped[str] = mapped_column(String(16))
    author_manager_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    text: Mapped[str] = mapped_column(Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    external_id: Mapped[str | None] = mapped_column(String(200))
    delivery_status: Mapped[str] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    raw_ref: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MessageRevision(Base):
    """An earlier text of a message the client edited."""

    __tablename__ = "message_revisions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(Id, ForeignKey("messages.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChannelCheckpoint(Base):
    """A channel account's reading position, written with the messages it covers."""

    __tablename__ = "channel_checkpoints"
    __table_args__ = (UniqueConstraint("channel_account_id", "key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel_account_id: Mapped[int] = mapped_column(Id, ForeignKey("channel_accounts.id"))
    key: Mapped[str] = mapped_column(String(120))
    value: Mapped[str] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
