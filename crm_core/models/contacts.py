"""Contacts, the identities that find them, their touches, and merges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class Contact(Base):
    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    segment: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"), index=True)
    merged_into_id: Mapped[int | None] = mapped_column(Id, ForeignKey("contacts.id"))
    # an ad platform's test lead: kept, but out of routing and reports, and joined by no one
    is_test: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactIdentity(Base):
    __tablename__ = "contact_identities"
    __table_args__ = (
        UniqueConstraint("kind", "value"),
        Index("ix_contact_identities_handle", "kind", "handle"),  # search by @username
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    value: Mapped[str] = mapped_column(String(320))
    # the client's public name in the channel as they last wrote under it (a Telegram
    # @username, lower-cased): found by search, never an identity (a handle changes hands)
    handle: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    unreachable_reason: Mapped[str | None] = mapped_column(String(500))


class Touch(Base):
    """One attributed contact with the company: the channel plus UTM tags and click ids.

    A contact's first-touch and last-touch attribution are its earliest and latest touch.
    """

    __tablename__ = "touches"
    __table_args__ = (
        # a contact's latest touch at a moment (reports' last touch): newest first, by id on ties
        Index("ix_touches_contact_time", "contact_id", "occurred_at", "id"),
        Index("ix_touches_occurred_at", "occurred_at"),  # the leads of a period
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"))
    channel: Mapped[str] = mapped_column(String(24))
    channel_account: Mapped[str] = mapped_column(String(120))
    utm_source: Mapped[str | None] = mapped_column(String(200))
    utm_medium: Mapped[str | None] = mapped_column(String(200))
    utm_campaign: Mapped[str | None] = mapped_column(String(200))
    utm_content: Mapped[str | None] = mapped_column(String(200))
    utm_term: Mapped[str | None] = mapped_column(String(200))
    gclid: Mapped[str | None] = mapped_column(String(200))
    yclid: Mapped[str | None] = mapped_column(String(200))
    fbclid: Mapped[str | None] = mapped_column(String(200))
    referrer: Mapped[str | None] = mapped_column(String(2000))
    landing_page: Mapped[str | None] = mapped_column(String(2000))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ContactMerge(Base):
    """Says what moved from ``merged`` into ``survivor``, so that it can be undone."""

    __tablename__ = "contact_merges"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    survivor_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"), index=True)
    merged_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"), index=True)
    reason: Mapped[str] = mapped_column(String(500))
    moved: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
