"""Phone calls: one row per call a line or a PBX reported, keyed by its Call-ID."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_contact", "contact_id", "id"),
        Index("ix_calls_started_at", "started_at"),  # reports: the calls of a period
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    # ``sip:<Call-ID>`` or ``zadarma:<pbx_call_id>``: a repeat is stored once.
    call_key: Mapped[str] = mapped_column(String(200), unique=True)
    channel_account_id: Mapped[int] = mapped_column(Id, ForeignKey("channel_accounts.id"))
    contact_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"))
    conversation_id: Mapped[int] = mapped_column(Id, ForeignKey("conversations.id"))
    message_id: Mapped[int | None] = mapped_column(Id, ForeignKey("messages.id"))
    direction: Mapped[str] = mapped_column(String(4))
    caller: Mapped[str] = mapped_column(String(200))
    callee: Mapped[str] = mapped_column(String(200))
    manager_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    duration_seconds: Mapped[int] = mapped_column(Integer, default=0)
    disposition: Mapped[str] = mapped_column(String(16))
    voicemail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # An answered call's recording (its message's attachment too); SQL NULL when there is
    # none, or once the line's retention removed it (crm_core.recordings).
    recording: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
