"""The Monday letter: each week, every active head of sales gets a summary of the past
week (Monday to Sunday in the company's time zone) by mail.

When: the week's moment is a weekday and a time of day in the company's time zone
(:class:`LetterSchedule`); from that moment until the week ends, the letter of the past
week is due for every head who has not had it. A hub that was down at the moment sends
when it comes back the same week; a week gone by is never caught up.

Once: a ``weekly_letters`` row (unique per head and summed-up week) is inserted with ON
CONFLICT DO NOTHING in the transaction that writes the mail's outbox row, and the mail is
queued only when the row was new. Two workers looking at once: PostgreSQL makes the
second insert wait for the first transaction and then skip; SQLite has one writer.

What: the figures come from the reports (:mod:`crm_core.reports.activity` and
:mod:`crm_core.reports.funnel`) over the head's own scope (a head sees everyone); the
outbox row carries them, and its handler (in ``hub``) words and sends the mail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.access import viewer_for
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import ChannelAccount, Conversation, Manager, Team, WeeklyLetter
from crm_core.report_maths import median
from crm_core.reports import activity, funnel
from crm_core.reports.activity import HoursOf
from crm_core.reports.common import Filters, Period, Scope, real_contact, scope_of
from crm_core.tables import insert_new

LETTER_TOPIC = "letter.email"
ACTOR = "weekly_letter"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class LetterSchedule:
    """The week's moment: ``weekday`` (0 Monday .. 6 Sunday) at ``at``, in ``timezone``."""

    weekday: int
    at: time
    timezone: str

    def week_start(self, now: datetime) -> date:
        """The Monday of the (company time zone) week that holds ``now``."""
        today = now.astimezone(ZoneInfo(self.timezone)).date()
        return today - timedelta(days=today.weekday())

    def moment(self, monday: date) -> datetime:
        """When the letter of the week before ``monday``'s week goes out."""
        day = monday + timedelta(days=self.weekday)
        return datetime.combine(day, self.at, tzinfo=ZoneInfo(self.timezone))

    def due(self, now: datetime) -> Period | None:
        """The past week (Monday to Sunday) when this week's moment has passed, else None."""
        monday = self.week_start(now)
        if now < self.moment(monday):
            return None
        return Period(monday - timedelta(days=7), monday - timedelta(days=1), self.timezone)


def heads_without_letter(session: Session, week: Period) -> list[Manager]:
    """Active heads of sales with no letter for ``week`` yet (by id)."""
    had = select(WeeklyLetter.id).where(
        WeeklyLetter.manager_id == Manager.id, WeeklyLetter.week_start == week.first
    )
    return list(
        session.scalars(
            select(Manager)
            .where(Manager.role == Role.HEAD.value, Manager.active, ~had.exists())
            .order_by(Manager.id)
        )
    )


def queue_letters(
    session: Session,
    week: Period,
    link: str,
    hours_of: HoursOf,
    now: datetime,
) -> int:
    """Queue the letter of ``week`` for every head who has not had it; how many were queued.

    Each head's row and outbox row are written together; a row another transaction
    wrote first (a second worker) means that head's letter is not queued here.
    """
    heads = heads_without_letter(session, week)
    if not heads:
        return 0
    journal = Journal(ACTOR, now)
    figures: dict[Scope, dict[str, Any]] = {}
    queued = 0
    for head in heads:
        viewer = viewer_for(session, head.id, ACTOR)
        if viewer is None:
            continue
        scope = scope_of(session, viewer, Filters())
        if scope not in figures:
            figures[scope] = week_figures(session, week, scope, hours_of, now)
        taken = session.execute(
            insert_new(session, tables.weekly_letters, ("manager_id", "week_start"))
            .values(manager_id=head.id, week_start=week.first, queued_at=now)
            .returning(tables.weekly_letters.c.id)
        ).first()
        if taken is None:
            continue  # another worker queued it
        payload = {
            "manager_id": head.id,
            "email": head.email,
            "name": head.name,
            "locale": head.locale,
            "week": week.as_json(),
            "link": link,
            **figures[scope],
        }
        key = f"letter:{head.id}:{week.first.isoformat()}"
        journal.enqueue(LETTER_TOPIC, key, payload)
        journal.record(
            "weekly_letter.queued", "manager", head.id, {"week_start": week.first.isoformat()}
        )
        queued += 1
    if queued:
        journal.flush(session)
    return queued


def week_figures(
    session: Session, week: Period, scope: Scope, hours_of: HoursOf, now: datetime
) -> dict[str, Any]:
    """The letter's figures: totals and a line per manager (JSON-ready)."""
    filters = Filters()
    made = activity.activity(session, week, filters, scope, hours_of, now)
    funnels = funnel.funnel(session, week, filters, scope)
    lines = []
    for row in made["managers"]:
        lines.append(
            {
                "manager_id": row["manager_id"],
                "name": row["manager"],
                "received": row["conversations_received"],
                "answered": row["conversations_answered"],
                "median_first_response_minutes": row["first_response_work_minutes"]["median"],
                "won": row["deals_won"],
                "revenue": row["won_amount"],
                "lost": row["deals_lost"],
            }
        )
    waits = first_responses(session, week, scope, hours_of)
    middle = median(waits)
    revenue = sum((Decimal(row["won_amount"]) for row in made["managers"]), Decimal(0))
    return {
        "totals": {
            "new_deals": sum(f["cohort"] for f in funnels["funnels"]),
            "won": sum(row["deals_won"] for row in made["managers"]),
            "revenue": str(revenue),
            "lost": sum(row["deals_lost"] for row in made["managers"]),
            "received": sum(row["conversations_received"] for row in made["managers"]),
            "answered": sum(row["conversations_answered"] for row in made["managers"]),
            "median_first_response_minutes": None if middle is None else round(middle / 60, 1),
        },
        "managers": lines,
    }


def first_responses(session: Session, week: Period, scope: Scope, hours_of: HoursOf) -> list[float]:
    """Seconds to the first reply, in the team's working time, of the conversations
    opened in ``week``: what the activity report's per-manager medians are made of,
    here for everyone together (the activity report has no overall median)."""
    query = (
        select(Conversation.opened_at, Conversation.first_response_at, Team.name)
        .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
        .outerjoin(Team, Team.id == Conversation.team_id)
        .where(
            and_(
                Conversation.opened_at >= week.start,
                Conversation.opened_at < week.end,
                Conversation.first_response_at.is_not(None),
            ),
            scope.on(Conversation.assignee_id),
            real_contact(Conversation.contact_id),
        )
    )
    waits = []
    for opened, answered, team in session.execute(query):
        if answered is not None and answered >= opened:
            waits.append(hours_of(team).working_seconds(opened, answered))
    return waits
