"""Small builders shared by the tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.contracts import Attribution, IdentityRef, InboundMessage
from crm_core.db import Database
from crm_core.enums import Channel, IdentityKind, Role
from crm_core.journal import EVENTS_TOPIC, Journal, unpacked
from crm_core.models import Base, OutboxMessage
from crm_core.people import create_api_token, create_manager

_ids = count(1)
WHEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def inbound(
    *identities: tuple[IdentityKind, str],
    external_id: str | None = None,
    channel: Channel | str = Channel.API,
    account: str = "default",
    name: str | None = None,
    text: str = "Hello, how much is a managed PostgreSQL cluster?",
    attribution: Attribution | None = None,
    funnel: str | None = None,
    minutes: int = 0,
) -> InboundMessage:
    return InboundMessage(
        channel=Channel(channel),
        channel_account=account,
        external_id=external_id or f"ext-{next(_ids)}",
        identities=tuple(IdentityRef(kind, value) for kind, value in identities),
        occurred_at=WHEN + timedelta(minutes=minutes),
        display_name=name,
        text=text,
        attribution=attribution or Attribution(),
        funnel=funnel,
    )


def phone(value: str) -> tuple[IdentityKind, str]:
    return (IdentityKind.PHONE, value)


def telegram(value: str) -> tuple[IdentityKind, str]:
    return (IdentityKind.TELEGRAM, value)


def email(value: str) -> tuple[IdentityKind, str]:
    return (IdentityKind.EMAIL, value)


async def add_managers(db: Database, count_: int, *, capacity: int = 20) -> list[int]:
    def work(session: Session) -> list[int]:
        journal = Journal("test", WHEN)
        ids = [
            create_manager(
                session,
                journal,
                email=f"m{i}@example.test",
                name=f"Manager {i}",
                role=Role.MANAGER,
                team="Sales",
                capacity=capacity,
            ).id
            for i in range(1, count_ + 1)
        ]
        journal.flush(session)
        return ids

    return await db.write(work)


async def count_rows(db: Database, model: Any, *where: Any) -> int:
    def work(session: Session) -> int:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    return await db.read(work)


async def api_token(db: Database, name: str = "tests", manager_id: int | None = None) -> str:
    """A new API token's plain text (an integration's, or a manager's)."""

    def work(session: Session) -> str:
        journal = Journal("test", WHEN)
        _row, plain = create_api_token(session, journal, name, manager_id)
        journal.flush(session)
        return plain

    return await db.write(work)


async def emitted(db: Database, event: str | None = None) -> list[dict[str, Any]]:
    """The events committed so far, in order (each ``events`` outbox row unpacked);
    ``event`` keeps those of one name."""

    def work(session: Session) -> list[dict[str, Any]]:
        rows = session.scalars(
            select(OutboxMessage.payload)
            .where(OutboxMessage.topic == EVENTS_TOPIC)
            .order_by(OutboxMessage.id)
        )
        return [dict(p) for row in rows for _key, p in unpacked(row)]

    found = await db.read(work)
    return [e for e in found if event is None or e["event"] == event]


async def event_names(db: Database) -> list[str]:
    return [e["event"] for e in await emitted(db)]


async def table_counts(db: Database) -> dict[str, int]:
    """How many rows each table holds: equal before and after means nothing was written."""

    def work(session: Session) -> dict[str, int]:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }

    return await db.read(work)
