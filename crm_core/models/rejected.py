"""Requests refused at ``/hooks/...`` (a bad signature, a malformed body, ...): kept for an
admin without the body or any secret, repeats counted on one row, capped per source."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class RejectedHook(Base):
    """One kind of refusal of one source: the same status and body hash is one row."""

    __tablename__ = "rejected_hooks"
    __table_args__ = (
        UniqueConstraint("kind", "source", "status", "body_sha256"),
        Index("ix_rejected_hooks_source", "kind", "source", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # the path's kind: form, meta, telegram...
    source: Mapped[str] = mapped_column(String(100))  # the configured source's (bot's) key
    status: Mapped[int] = mapped_column(Integer)
    error: Mapped[str] = mapped_column(String(64))  # the answer's error code
    reason: Mapped[str] = mapped_column(String(300))  # the answer's message
    body_sha256: Mapped[str] = mapped_column(String(64))  # "" when the body was not read
    body_bytes: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
