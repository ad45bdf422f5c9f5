"""Funnels of ordered stages, the deals that move through them, and the tasks that follow."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class Funnel(Base):
    __tablename__ = "funnels"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name_en: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Stage(Base):
    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("funnel_id", "code"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    funnel_id: Mapped[int] = mapped_column(Id, ForeignKey("funnels.id"))
    code: Mapped[str] = mapped_column(String(64))
    name_en: Mapped[str] = mapped_column(String(200))
    name_ru: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(8))


class Deal(Base):
    __tablename__ = "deals"
    __table_args__ = (
        Index("ix_deals_contact_open", "contact_id", "is_open"),
        # reports: the deals closed in a period, a funnel's deals created in one
        Index("ix_deals_closed_at", "closed_at"),
        Index("ix_deals_funnel_created", "funnel_id", "created_at"),
        # The funnel board: a stage's most recently changed deals, the counts per stage.
        Index("ix_deals_stage_recent", "stage_id", "updated_at", "id"),
        Index("ix_deals_funnel_stage_owner", "funnel_id", "stage_id", "owner_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(Id, ForeignKey("contacts.id"))
    funnel_id: Mapped[int] = mapped_column(Id, ForeignKey("funnels.id"))
    stage_id: Mapped[int] = mapped_column(Id, ForeignKey("stages.id"), index=True)
    # Mirrors the stage's kind (open vs won/lost): kept on the deal for the index that
    # finds a contact's open deal on every inbound message; move_deal keeps it in step.
    is_open: Mapped[bool] = mapped_column(Boolean)
    title: Mapped[str] = mapped_column(String(300))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    currency: Mapped[str] = mapped_column(String(3), default="RUB")
    product: Mapped[str | None] = mapped_column(String(64))  # a code of the product list
    owner_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"), index=True)
    lost_reason: Mapped[str | None] = mapped_column(String(500))
    source_touch_id: Mapped[int | None] = mapped_column(Id, ForeignKey("touches.id"))
    routing_reason: Mapped[str | None] = mapped_column(String(500))
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    conversation_id: Mapped[int | None] = mapped_column(Id, ForeignKey("conversations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DealStageChange(Base):
    """The stage history: every move with its time (from_stage is None on creation)."""

    __tablename__ = "deal_stage_changes"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    deal_id: Mapped[int] = mapped_column(Id, ForeignKey("deals.id"), index=True)
    from_stage_id: Mapped[int | None] = mapped_column(Id, ForeignKey("stages.id"))
    to_stage_id: Mapped[int] = mapped_column(Id, ForeignKey("stages.id"))
    actor: Mapped[str] = mapped_column(String(64))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        # reports: call-backs made in a period, tasks done in one
        Index("ix_tasks_kind_created", "kind", "created_at"),
        Index("ix_tasks_done_at", "done_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16))
    assignee_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"), index=True)
    author_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    contact_id: Mapped[int | None] = mapped_column(Id, ForeignKey("contacts.id"), index=True)
    deal_id: Mapped[int | None] = mapped_column(Id, ForeignKey("deals.id"), index=True)
    conversation_id: Mapped[int | None] = mapped_column(Id, ForeignKey("conversations.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
