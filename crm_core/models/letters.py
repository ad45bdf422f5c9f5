"""The weekly letters to heads of sales: one row per head and week, written in the
transaction that queues the mail, so a week's letter is queued once whoever looks."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class WeeklyLetter(Base):
    """``week_start``: the Monday (company time zone) of the week the letter sums up."""

    __tablename__ = "weekly_letters"
    __table_args__ = (UniqueConstraint("manager_id", "week_start"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    manager_id: Mapped[int] = mapped_column(Id, ForeignKey("managers.id"))
    week_start: Mapped[date] = mapped_column(Date)
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
