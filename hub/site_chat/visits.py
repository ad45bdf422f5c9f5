"""Opening a visit: who the visitor is (their token, or the site's verified user), and
what the widget is told about itself and about them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from connectors.site_chat.config import WidgetConfig
from connectors.site_chat.protocol import Hello, Page
from crm_core import site_visitors as visitors
from crm_core.contracts import same_secret
from crm_core.identities import InvalidIdentityError, normalize_email, normalize_phone
from crm_core.site_visitors import Visitor
from hub.keys import CLOCK, DATABASE, ROUTING, SETTINGS
from routing.hours import WorkingHours

log = logging.getLogger(__name__)
_DAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "ru": ("Пн", "Вт", "Ср", "Чт", "Пт", "Сб", "Вс"),
}


class VisitRefusedError(Exception):
    """The visit cannot open; ``code`` is the socket's close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Visit:
    visitor: Visitor
    token: str
    new: bool


def verified_user_id(widget: WidgetConfig, hello: Hello) -> str | None:
    """The site's user id when the page vouched for it with the right hash; None for an
    anonymous visitor. Raises :class:`VisitRefusedError` (4401) for a wrong hash, or for no
    user where the widget requires one."""
    user = hello.user
    if user is None:
        if widget.require_verified:
            raise VisitRefusedError(4401, "this widget talks to verified users only")
        return None
    if not widget.secret:
        raise VisitRefusedError(4401, "this widget has no secret to verify users with")
    expected = hmac.new(widget.secret.encode(), user.id.encode(), hashlib.sha256).hexdigest()
    if not same_secret(user.hash.lower(), expected):
        raise VisitRefusedError(4401, "user_hash does not match user_id")
    return user.id


async def open_visit(
    app: web.Application, widget: WidgetConfig, hello: Hello, user_id: str | None
) -> Visit:
    """The visitor of this browser (their token's), or a new one with a new token."""
    now = app[CLOCK].now()
    region = app[SETTINGS].default_region
    fresh = visitors.new_token()

    def work(session: Session) -> Visit:
        account = visitors.widget_account(session, widget.key, now)
        known = visitors.by_token(session, account, hello.token, now) if hello.token else None
        if known is not None and known.verified and user_id is None:
            known = None  # the site's user logged out: their chat is not for this browser now
        wanted = visitors.visitor_key_of(user_id) if user_id is not None else None
        if known is not None and (wanted is None or known.visitor_key == wanted):
            visit = Visit(known, hello.token or "", new=False)
        else:
            key = wanted or visitors.visitor_key_of(None)
            first = _first_visit(hello.first_visit or hello.page, now)
            visitor = visitors.open_visitor(
                session,
                account,
                key,
                verified=user_id is not None,
                first_visit=first,
                token=fresh,
                now=now,
            )
            visit = Visit(visitor, fresh, new=True)
        visitors.remember_language(session, visit.visitor.id, hello.language)
        if user_id is not None and hello.user is not None:  # the site vouches for these
            email, phone = _email(hello.user.email), _phone(hello.user.phone, region)
            visitors.remember_contact_fields(
                session, visit.visitor.id, hello.user.name, email, phone
            )
            visit = Visit(visitors.reloaded(session, visit.visitor.id), visit.token, visit.new)
        return visit

    return await app[DATABASE].write(work)


def _first_visit(page: Page, now: datetime) -> dict[str, Any]:
    return {"url": page.url, "referrer": page.referrer, "at": now.isoformat()}


def _email(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return normalize_email(raw)
    except InvalidIdentityError:
        return None


def _phone(raw: str | None, region: str) -> str | None:
    if not raw:
        return None
    try:
        return normalize_phone(raw, region)
    except InvalidIdentityError:
        return None


def widget_view(app: web.Application, widget: WidgetConfig, language: str) -> dict[str, Any]:
    """What the widget is told about itself (never its secret)."""
    hours = team_hours(app, widget)
    now = app[CLOCK].now()
    return {
        "key": widget.key,
        "title": widget.title,
        "greeting": widget.greeting_in(language),
        "color": widget.color,
        "position": widget.position,
        "language": widget.language,
        "prechat": dict(widget.prechat),
        "open": hours is None or hours.is_open(now),
        "hours": hours_text(hours, language) if hours is not None else "",
        "max_message_chars": widget.limits.max_message_chars,
        "max_file_bytes": widget.limits.max_file_bytes,
        "file_types": list(widget.file_types),
    }


def team_hours(app: web.Application, widget: WidgetConfig) -> WorkingHours | None:
    """The working hours of the widget's team (None: always open, or no such team)."""
    if widget.team is None:
        return None
    team = app[ROUTING].config.teams.get(widget.team)
    if team is None or team.hours.always:
        return None
    return team.hours


def hours_text(hours: WorkingHours, language: str) -> str:
    """``Mon-Fri 09:00-18:00 (Europe/Moscow)``: the days with the same hours together."""
    days = _DAYS.get(language, _DAYS["en"])
    groups: list[tuple[list[int], str]] = []
    for day in range(7):
        intervals = hours.weekly.get(day, ())
        if not intervals:
            continue
        span = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in intervals)
        if groups and groups[-1][1] == span and groups[-1][0][-1] == day - 1:
            groups[-1][0].append(day)
        else:
            groups.append(([day], span))
    parts = [
        (days[d[0]] if len(d) == 1 else f"{days[d[0]]}-{days[d[-1]]}") + f" {span}"
        for d, span in groups
    ]
    return f"{'; '.join(parts)} ({hours.timezone})"
