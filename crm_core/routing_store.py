"""The routing document edited through the API: stored in versions, the newest in force."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.models import RoutingDocument


def latest_routing(session: Session) -> dict[str, Any] | None:
    return session.scalar(
        select(RoutingDocument.document).order_by(RoutingDocument.id.desc()).limit(1)
    )


def store_routing(session: Session, journal: Journal, document: dict[str, Any]) -> int:
    """Keep a new version (validated by the caller before anything is written)."""
    row = RoutingDocument(document=document, actor=journal.actor, created_at=journal.now)
    session.add(row)
    session.flush()
    journal.recorded_and_emitted("routing.changed", "routing", row.id, {"version": row.id})
    return row.id
