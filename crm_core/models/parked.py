"""Inbound items a channel could not take (a lead the Graph API refused, ...): parked with
the reason, visible to an admin, retried in the background while the error can heal."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class ParkedItem(Base):
    """One inbound item, by its natural key within its channel and account."""

    __tablename__ = "parked_items"
    __table_args__ = (
        UniqueConstraint("channel", "account", "item_key"),
        Index("ix_parked_items_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))  # "meta", later "email", "telegram"...
    account: Mapped[str] = mapped_column(String(100))  # the source's or the account's key
    item_key: Mapped[str] = mapped_column(String(200))  # e.g. the leadgen id
    status: Mapped[str] = mapped_column(String(16))  # "retrying" or "parked"
    reason: Mapped[str] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
