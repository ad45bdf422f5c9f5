"""Timers that fire once: redirects and first-response SLAs of conversations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class Timer(Base):
    """Due at ``due_at``; ``fired_at`` is set in the transaction that acts on it."""

    __tablename__ = "timers"
    __table_args__ = (Index("ix_timers_due", "fired_at", "due_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int] = mapped_column(Id, ForeignKey("conversations.id"), index=True)
    manager_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    team: Mapped[str | None] = mapped_column(String(120))
    minutes: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outcome: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
