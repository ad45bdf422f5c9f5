"""Requests refused at ``/hooks/...``: recorded for an admin, without the body or secrets.

A repeat (the same source, status and body hash) adds to one row's ``count``, so a sender
that retries a bad request adds no rows; rows of a source past the newest ``cap`` are
pruned when a new row is added, so a flood of different bad bodies cannot fill the
database either. Only configured sources are recorded (an unknown one is a 404 that
writes nothing), which bounds the number of sources too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from crm_core.models import RejectedHook
from crm_core.queries import plain
from crm_core.tables import insert_new
from crm_core.text import scrubbed

CAP = 1000  # rows kept per source, newest first
_TABLE = cast(Table, RejectedHook.__table__)


@dataclass(frozen=True, slots=True)
class Rejection:
    kind: str
    source: str
    status: int
    error: str
    reason: str
    body_sha256: str  # "" when the body was not read (refused by its declared size)
    body_bytes: int


def record(session: Session, rejection: Rejection, now: datetime, cap: int = CAP) -> None:
    """Count the refusal on its row (added if new; then the source's oldest are pruned)."""
    kind, source = scrubbed(rejection.kind)[:32], scrubbed(rejection.source)[:100]
    keys: dict[str, object] = {
        "kind": kind,
        "source": source,
        "status": rejection.status,
        "body_sha256": rejection.body_sha256[:64],
    }
    reason = scrubbed(rejection.reason)[:300]
    error = scrubbed(rejection.error)[:64]
    added = session.execute(
        insert_new(session, _TABLE, list(keys)).values(
            **keys,
            error=error,
            reason=reason,
            body_bytes=rejection.body_bytes,
            count=1,
            first_seen_at=now,
            last_seen_at=now,
        )
    )
    if getattr(added, "rowcount", 0):
        _prune(session, kind, source, cap)
        return
    session.execute(
        update(RejectedHook)
        .where(*(getattr(RejectedHook, name) == value for name, value in keys.items()))
        .values(count=RejectedHook.count + 1, last_seen_at=now, reason=reason, error=error)
    )


def _prune(session: Session, kind: str, source: str, cap: int) -> None:
    oldest_kept = session.scalar(
        select(RejectedHook.id)
        .where(RejectedHook.kind == kind, RejectedHook.source == source)
        .order_by(RejectedHook.id.desc())
        .offset(cap - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        session.execute(
            delete(RejectedHook).where(
                RejectedHook.kind == kind,
                RejectedHook.source == source,
                RejectedHook.id < oldest_kept,
            )
        )


def page(
    session: Session,
    before: int | None,
    limit: int,
    *,
    kind: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    """Newest first; ``next_before`` continues."""
    query = select(RejectedHook)
    if before is not None:
        query = query.where(RejectedHook.id < before)
    if kind is not None:
        query = query.where(RejectedHook.kind == kind)
    if source is not None:
        query = query.where(RejectedHook.source == source)
    rows = list(session.scalars(query.order_by(RejectedHook.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": [plain(r) for r in rows],
        "next_before": rows[-1].id if more and rows else None,
    }


def latest(session: Session) -> dict[tuple[str, str], tuple[str, datetime, int]]:
    """Per source: the newest refusal (status and reason), its time, the refusals counted."""
    found: dict[tuple[str, str], tuple[str, datetime, int]] = {}
    groups = session.execute(
        select(
            RejectedHook.kind,
            RejectedHook.source,
            func.sum(RejectedHook.count),
        ).group_by(RejectedHook.kind, RejectedHook.source)
    ).all()
    for kind, source, total in groups:
        newest = session.execute(
            select(RejectedHook.status, RejectedHook.reason, RejectedHook.last_seen_at)
            .where(RejectedHook.kind == kind, RejectedHook.source == source)
            .order_by(RejectedHook.last_seen_at.desc(), RejectedHook.id.desc())
            .limit(1)
        ).one()
        found[(kind, source)] = (
            f"{newest.status}: {newest.reason}",
            newest.last_seen_at,
            int(total),
        )
    return found
