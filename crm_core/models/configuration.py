"""Configuration edited through the API, kept with who changed it and when."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class RoutingDocument(Base):
    """A version of the routing (teams, rules, automation); the newest is in force."""

    __tablename__ = "routing_documents"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
