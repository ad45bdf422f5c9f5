"""What every report takes: a period in the company's time zone, filters, and the scope
of the person asking (a manager sees their own numbers, and their team's where the team
shares work; the head of sales and admins see everyone).

Test leads (``contacts.is_test``) are in no report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import BigInteger, ColumnElement, Integer, cast, extract, false, func, select, true
from sqlalchemy.orm import Session

from crm_core.access import Viewer
from crm_core.models import Contact, Manager, Team


class ReportError(ValueError):
    """A report that cannot be made as asked; ``field`` names the parameter."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Period:
    """``first``..``last`` (days, inclusive) in ``timezone``; ``start``/``end`` in UTC."""

    first: date
    last: date
    timezone: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=self.zone)

    def month_of(self, moment: datetime) -> str:
        """``2026-03``: the month of ``moment`` in the company's time zone."""
        return moment.astimezone(self.zone).strftime("%Y-%m")

    def as_json(self) -> dict[str, str]:
        return {
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "timezone": self.timezone,
        }


@dataclass(frozen=True, slots=True)
class Filters:
    team: str | None = None
    manager_id: int | None = None
    funnel: str | None = None
    channel: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "team": self.team,
            "manager_id": self.manager_id,
            "funnel": self.funnel,
            "channel": self.channel,
        }


@dataclass(frozen=True, slots=True)
class Scope:
    """The managers whose numbers the report counts (None: everyone's, unassigned too)."""

    managers: frozenset[int] | None
    team_id: int | None = None

    def on(self, column: Any) -> ColumnElement[bool]:
        if self.managers is None:
            return true()
        if not self.managers:
            return false()
        found: ColumnElement[bool] = column.in_(sorted(self.managers))
        return found


@dataclass(frozen=True, slots=True)
class Table:
    """One table of a report, as exported (CSV, a sheet of the XLSX)."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


def scope_of(session: Session, viewer: Viewer, filters: Filters) -> Scope:
    """Whose numbers this viewer may see, narrowed by the team and manager filters."""
    team_id = None
    if filters.team is not None:
        team_id = session.scalar(select(Team.id).where(Team.name == filters.team))
        if team_id is None:
            raise ReportError("team", f"no team {filters.team!r}")
    managers: set[int] | None = None
    if not viewer.sees_all:
        assert viewer.manager_id is not None
        managers = {viewer.manager_id}
        if viewer.team_shared and viewer.team_id is not None:
            managers |= set(
                session.scalars(select(Manager.id).where(Manager.team_id == viewer.team_id))
            )
    if team_id is not None:
        members = set(session.scalars(select(Manager.id).where(Manager.team_id == team_id)))
        managers = members if managers is None else managers & members
    if filters.manager_id is not None:
        wanted = {filters.manager_id}
        managers = wanted if managers is None else managers & wanted
    return Scope(None if managers is None else frozenset(managers), team_id)


def real_contact(contact_id: Any) -> ColumnElement[bool]:
    """Not a test lead's contact.

    ``NOT IN`` the (few) test contacts rather than a correlated ``NOT EXISTS``: SQLite then
    reads the list once, PostgreSQL plans it as a hashed subplan. ``contact_id`` is never
    NULL where this is asked, so ``NOT IN`` means what ``NOT EXISTS`` did.
    """
    real: ColumnElement[bool] = contact_id.not_in(select(Contact.id).where(Contact.is_test))
    return real


def epoch_micros(session: Session, moment: Any) -> ColumnElement[int]:
    """A datetime column as whole microseconds since the Unix epoch, computed by the database.

    SQLite keeps a datetime as text (``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC, as SQLAlchemy
    writes it): whole seconds from ``unixepoch()`` (``strftime('%s')`` before SQLite 3.38),
    the fraction from the text.
    PostgreSQL's ``extract(epoch ...)`` is an exact numeric. Reading integers spares a report
    parsing (and time-zoning) a datetime per row; differences divided by 10**6 in Python are
    what ``timedelta.total_seconds()`` gives for the same two datetimes.
    """
    dialect = session.get_bind().dialect
    if dialect.name == "sqlite":
        version: tuple[int, ...] = getattr(dialect.dbapi, "sqlite_version_info", (0,))
        seconds: ColumnElement[int] = (  # unixepoch() (SQLite 3.38) is the cheaper of the two
            func.unixepoch(moment, type_=Integer)
            if version >= (3, 38)
            else cast(func.strftime("%s", moment), Integer)
        )
        return seconds * 1_000_000 + cast(func.substr(moment, 21, 6), Integer)
    return cast(extract("epoch", moment) * 1_000_000, BigInteger)
