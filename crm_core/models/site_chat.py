"""Site chat visitors: who talks through a website's widget, and their browser sessions.

A visitor is one person as a widget knows them: a random id for an anonymous visitor,
or the site's own user id for a verified one (the same user on two devices is one
visitor). A visitor's browser holds a random session token; only its SHA-256 digest is
stored here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class SiteVisitor(Base):
    __tablename__ = "site_visitors"
    __table_args__ = (UniqueConstraint("channel_account_id", "visitor_key"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel_account_id: Mapped[int] = mapped_column(Id, ForeignKey("channel_accounts.id"))
    # "v:<random>" for an anonymous visitor, "user:<the site's user id>" for a verified one
    visitor_key: Mapped[str] = mapped_column(String(200))
    verified: Mapped[bool] = mapped_column(Boolean)
    # what the visitor typed into the widget (never what the contact holds elsewhere)
    name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    language: Mapped[str | None] = mapped_column(String(8))
    # the widget's own conversation: the visitor sees its messages of this widget only
    conversation_id: Mapped[int | None] = mapped_column(Id, ForeignKey("conversations.id"))
    first_visit: Mapped[dict[str, Any]] = mapped_column(JSON)  # url, referrer, at
    read_up_to: Mapped[int] = mapped_column(Id, default=0)  # the last message id they saw
    emailed_up_to: Mapped[int] = mapped_column(Id, default=0)  # replies already mailed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SiteSession(Base):
    """A browser's session token (its digest) for a visitor."""

    __tablename__ = "site_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    visitor_id: Mapped[int] = mapped_column(Id, ForeignKey("site_visitors.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class SiteUpload(Base):
    """A file a visitor uploaded, theirs to attach to a message of their conversation."""

    __tablename__ = "site_uploads"

    # the same bytes from two visitors are one stored file and two uploads
    visitor_id: Mapped[int] = mapped_column(Id, ForeignKey("site_visitors.id"), primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
