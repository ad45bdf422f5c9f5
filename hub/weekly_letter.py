"""The Monday letter (see :mod:`crm_core.weekly_letter`): its settings, the loop that
queues each week's letters, and the outbox handler that mails them.

```toml
weekly_letter_mailbox = "sales"     # a mailbox key of [channels.email]; empty: no letters
weekly_letter_day = "mon"           # mon .. sun
weekly_letter_time = "09:00"        # in the company's `timezone`
public_url = "https://crm.example.com"   # the hub's address, for the link to the reports
```

The loop runs in the process role that runs background work, every
``timer_poll_seconds``; the handler sends through the mailbox's SMTP server.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from functools import partial
from urllib.parse import urlsplit

from aiohttp import web

from connectors.email.config import MailboxConfig
from crm_core.clock import Clock
from crm_core.contracts import PermanentSendError
from crm_core.db import Database
from crm_core.outbox import Expired, OutboxHandler, OutboxItem
from crm_core.reports.activity import HoursOf
from crm_core.weekly_letter import (
    LETTER_TOPIC,
    WEEKDAYS,
    LetterSchedule,
    heads_without_letter,
    queue_letters,
)
from hub.background import cancel_all, poll_forever
from hub.email import EMAIL
from hub.keys import CLOCK, DATABASE, RELAY, ROUTING, SETTINGS
from hub.letter_words import compose
from hub.roles import runs_background
from hub.routing_setup import RoutingState
from hub.settings import Settings, SettingsError
from routing.hours import ALWAYS_OPEN, WorkingHours

log = logging.getLogger(__name__)
_TIME = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
_FULL_NAMES = {
    f"{name}day": name[:3] for name in ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
}


@dataclass(frozen=True, slots=True)
class LetterConfig:
    mailbox: MailboxConfig
    schedule: LetterSchedule
    public_url: str  # without a trailing slash

    def link(self, first: str, last: str) -> str:
        return f"{self.public_url}/reports?from={first}&to={last}"


WEEKLY_LETTER = web.AppKey("weekly_letter", LetterConfig)


def schedule_of(settings: Settings) -> LetterSchedule:
    """The day and time settings, checked (a bad value stops the start, naming it)."""
    day = settings.weekly_letter_day.strip().lower()
    day = _FULL_NAMES.get(day, day)
    if day not in WEEKDAYS:
        raise SettingsError(
            f"weekly_letter_day: expected one of {', '.join(WEEKDAYS)}, "
            f"got {settings.weekly_letter_day!r}"
        )
    found = _TIME.fullmatch(settings.weekly_letter_time.strip())
    if found is None:
        raise SettingsError(
            f'weekly_letter_time: expected a time of day like "09:00", '
            f"got {settings.weekly_letter_time!r}"
        )
    at = time(int(found.group(1)), int(found.group(2)))
    return LetterSchedule(WEEKDAYS.index(day), at, settings.timezone)


def public_url_of(settings: Settings) -> str:
    """``public_url`` without its trailing slash; empty when not set."""
    raw = settings.public_url.strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise SettingsError(
            f"public_url: expected the hub's address like https://crm.example.com, got {raw!r}"
        )
    return raw.rstrip("/")


def install(app: web.Application) -> None:
    """Check the settings; with ``weekly_letter_mailbox``, queue the letters (background
    role) and mail them (the outbox handler, see :func:`relay_handlers`)."""
    settings = app[SETTINGS]
    schedule = schedule_of(settings)
    url = public_url_of(settings)
    key = settings.weekly_letter_mailbox.strip()
    if not key:
        return
    channel = app.get(EMAIL)
    known = {m.key: m for m in channel.mailboxes} if channel is not None else {}
    if key not in known:
        raise SettingsError(
            f"weekly_letter_mailbox: no mailbox {key!r} in [channels.email] "
            f"(configured: {', '.join(sorted(known)) or 'none'})"
        )
    if not url:
        raise SettingsError(
            "public_url: the hub's address (e.g. https://crm.example.com) is needed by "
            "weekly_letter_mailbox, for the link to the reports"
        )
    app[WEEKLY_LETTER] = LetterConfig(known[key], schedule, url)
    if runs_background(app):
        app.cleanup_ctx.append(_run)


def relay_handlers(app: web.Application) -> dict[str, OutboxHandler]:
    """The outbox handler of the letters (also when they are off: a letter queued before
    they were turned off is then expired, not retried)."""
    return {LETTER_TOPIC: LetterMail(app.get(WEEKLY_LETTER), app[CLOCK])}


class LetterMail:
    """Mails one letter row; a temporary SMTP failure raises (retried with backoff), a
    permanent one (5xx, a refused address) expires the row: it cannot heal."""

    def __init__(self, config: LetterConfig | None, clock: Clock, timeout: float = 60.0) -> None:
        self._config = config
        self._clock = clock
        self._timeout = timeout

    def mail(self, item: OutboxItem, mailbox: MailboxConfig) -> EmailMessage:
        payload = item.payload
        letter = compose(payload)
        domain = mailbox.address.rsplit("@", 1)[1]
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"] = formataddr((mailbox.display_name or "", mailbox.address))
        mail["To"] = formataddr((str(payload.get("name") or ""), str(payload["email"])))
        mail["Subject"] = letter.subject
        mail["Date"] = format_datetime(self._clock.now())
        # the same id on a repeated delivery: mail programs show it once
        mail["Message-ID"] = f"<omnihub.{item.idempotency_key.replace(':', '.')}@{domain}>"
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(letter.text)
        mail.add_alternative(letter.html, subtype="html")
        return mail

    async def __call__(self, item: OutboxItem) -> None:
        if self._config is None:
            raise Expired("the weekly letter is off (weekly_letter_mailbox is empty)")
        from connectors.email.sender import deliver  # aiosmtplib: only when a letter goes

        mailbox = self._config.mailbox
        try:
            await deliver(
                mailbox, self.mail(item, mailbox), [str(item.payload["email"])], self._timeout
            )
        except PermanentSendError as exc:
            raise Expired(f"not sent: {exc}") from exc


def hours_of(routing: RoutingState) -> HoursOf:
    """A team's working hours by its name, in the routing in force when asked."""

    def hours(team: str | None) -> WorkingHours:
        found = routing.config.teams.get(team) if team else None
        return found.hours if found is not None else ALWAYS_OPEN

    return hours


class WeeklyLetters:
    """Every ``poll`` seconds: once this week's moment has passed, queue the past week's
    letter for each head who has not had it."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: LetterConfig,
        hours: HoursOf,
        poll: float,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._config = config
        self._hours = hours
        self._poll = poll
        self._on_queued = on_queued  # the relay's wake-up

    async def run_forever(self) -> None:
        await poll_forever("weekly letter", self.run_once, self._poll, self._on_queued)

    async def run_once(self) -> int:
        """Queue what is due now; returns how many letters were queued."""
        now = self._clock.now()
        week = self._config.schedule.due(now)
        if week is None:
            return 0
        # a read first: most passes find every letter queued and take no write lock
        if not await self._db.read(lambda s: bool(heads_without_letter(s, week))):
            return 0
        link = self._config.link(week.first.isoformat(), week.last.isoformat())
        queued = await self._db.write(
            partial(queue_letters, week=week, link=link, hours_of=self._hours, now=now)
        )
        if queued:
            log.info("weekly letter: %d queued for the week of %s", queued, week.first)
        return queued


async def _run(app: web.Application) -> AsyncIterator[None]:
    letters = WeeklyLetters(
        app[DATABASE],
        app[CLOCK],
        app[WEEKLY_LETTER],
        hours_of(app[ROUTING]),
        app[SETTINGS].timer_poll_seconds,
        app[RELAY].wake,
    )
    task = asyncio.create_task(letters.run_forever(), name="weekly-letter")
    yield
    await cancel_all([task])
