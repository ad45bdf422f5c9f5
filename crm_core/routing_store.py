"""The routing document edited through the API: stored in versions, the newest in force."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.models import RoutingDocument


def latest_routing_version(session: Session) -> int | None:
    """The newest version's id (one look at the primary key): cheap enough to poll."""
    return session.scalar(select(func.max(RoutingDocument.id)))


def routing_version(session: Session, version: int) -> dict[str, Any] | None:
    return session.scalar(select(RoutingDocument.document).where(RoutingDocument.id == version))


def store_routing(session: Session, journal: Journal, document: dict[str, Any]) -> int:
    """Keep a new version (validated by the caller before anything is written)."""
    row = RoutingDocument(document=document, actor=journal.actor, created_at=journal.now)
    session.add(row)
    session.flush()
    journal.recorded_and_emitted("routing.changed", "routing", row.id, {"version": row.id})
    return row.id
