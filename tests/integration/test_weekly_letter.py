"""The Monday letter against a real SMTP peer (aiosmtpd), on SQLite and PostgreSQL.

The summed-up week is Mon 23 - Sun 29 Nov 2026, Moscow time; the letter is due on
Monday 30 Nov at 09:00. What happened that week (every figure worked out by hand):

Conversations (no team: working time is clock time), opened -> first reply:
  Ann: Tue 24 10:00 -> 10:30 (30 min), Wed 25 11:00 -> 12:30 (90 min), Thu 26 12:00 never
  Bob: Fri 27 10:00 -> 10:06 (6 min)
  out of the week: Ann's Fri 20 Nov, Bob's Mon 30 Nov 07:00
  received 4, answered 3; median [6, 30, 90] = 30 min; Ann's [30, 90] = 60, Bob's 6.
Deals (consultation funnel):
  d1 Ann, created Tue 24, won 2 h later, 1 500 000.00
  d2 Ann, created Wed 25, lost 4 h later
  d3 Bob, created Thu 26, still open
  d4 Bob, created Mon 16 Nov, won Fri 27: 250.50 (won this week, not a new lead)
  a test lead's deal created and won on Tue 24 (999.00): in no figure
  new leads 3; won 2, revenue 1 500 250.50; lost 1.
Heads: Hanna (en) and Gleb (ru) get a letter each; Ivan, a head who left (inactive),
an admin and the managers get none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import datetime, time, timedelta
from decimal import Decimal
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from crm_core import weekly_letter
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import OutboxStatus, Role
from crm_core.journal import Journal
from crm_core.models import (
    ChannelAccount,
    Contact,
    Conversation,
    Deal,
    DealStageChange,
    Funnel,
    Manager,
    OutboxMessage,
    Stage,
    WeeklyLetter,
)
from crm_core.people import create_manager
from crm_core.weekly_letter import LETTER_TOPIC, LetterSchedule
from hub.app import create_app
from hub.keys import CLOCK, DATABASE, ROUTING
from hub.roles import ProcessRole
from hub.settings import Settings
from hub.weekly_letter import WEEKLY_LETTER, WeeklyLetters, hours_of
from routing.hours import ALWAYS_OPEN, WorkingHours
from tests.integration.email.mail import wait_until
from tests.integration.email.peers import SMTP_PASSWORD, SmtpCapture, free_port

MSK = ZoneInfo("Europe/Moscow")
SALES = "sales@example.test"
POLL = 0.02


def msk(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    server = SmtpCapture()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(database_url: str, smtp: SmtpCapture, tmp_path: Path) -> Settings:
    mailbox = {
        "key": "sales",
        "address": SALES,
        "display_name": "Example Sales",
        # the IMAP side is not under test: nothing listens there, its reader just retries
        "imap": {"host": "127.0.0.1", "port": free_port(), "security": "none", "user": SALES},
        "smtp": {
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "user": SALES,
            "password": SMTP_PASSWORD,
        },
        "sent_folder": None,
    }
    return Settings(
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        channels={"email": {"media_dir": str(tmp_path / "mail"), "mailboxes": [mailbox]}},
        outbox_poll_seconds=POLL,
        timer_poll_seconds=POLL,
        routing_poll_seconds=60.0,
        weekly_letter_mailbox="sales",
        weekly_letter_day="mon",
        weekly_letter_time="09:00",
        public_url="https://crm.example.com/",
    )


def _seed(session: Session) -> dict[str, int]:
    journal = Journal("test", msk(1, 9))
    people: dict[str, int] = {}
    for name, role, locale in (
        ("ann", Role.MANAGER, "ru"),
        ("bob", Role.MANAGER, "en"),
        ("hanna", Role.HEAD, "en"),
        ("gleb", Role.HEAD, "ru"),
        ("ivan", Role.HEAD, "ru"),
        ("admin", Role.ADMIN, "en"),
    ):
        manager = create_manager(
            session, journal, email=f"{name}@example.test", name=name.title(), role=role
        )
        manager.locale = locale
        manager.active = name != "ivan"
        people[name] = manager.id
    journal.flush(session)
    chat = ChannelAccount(channel="telegram", key="bot", title="bot", created_at=msk(1, 9))
    session.add(chat)
    session.flush()

    def contact(name: str, test: bool = False) -> int:
        row = Contact(name=name, is_test=test, created_at=msk(1, 9), updated_at=msk(1, 9))
        session.add(row)
        session.flush()
        return row.id

    for who, opened, answered in (
        ("ann", msk(24, 10), msk(24, 10, 30)),
        ("ann", msk(25, 11), msk(25, 12, 30)),
        ("ann", msk(26, 12), None),
        ("bob", msk(27, 10), msk(27, 10, 6)),
        ("ann", msk(20, 10), msk(20, 10, 5)),
        ("bob", msk(30, 7), msk(30, 7, 1)),
    ):
        session.add(
            Conversation(
                contact_id=contact(f"Client of {who}"),
                channel_account_id=chat.id,
                status="open",
                assignee_id=people[who],
                tags=[],
                opened_at=opened,
                first_response_at=answered,
                last_message_at=answered or opened,
            )
        )
    funnel = session.scalars(select(Funnel).where(Funnel.code == "consultation")).one()
    stages = {s.code: s for s in session.scalars(select(Stage).where(Stage.funnel_id == funnel.id))}
    for who, client, created, closed, stage, amount in (
        ("ann", contact("d1"), msk(24, 10), msk(24, 12), "won", Decimal("1500000.00")),
        ("ann", contact("d2"), msk(25, 10), msk(25, 14), "lost", None),
        ("bob", contact("d3"), msk(26, 10), None, "new", None),
        ("bob", contact("d4"), msk(16, 10), msk(27, 15), "won", Decimal("250.50")),
        ("ann", contact("test", test=True), msk(24, 11), msk(24, 13), "won", Decimal(999)),
    ):
        final = stages[stage]
        deal = Deal(
            contact_id=client,
            funnel_id=funnel.id,
            stage_id=final.id,
            is_open=closed is None,
            title="deal",
            amount=amount,
            currency="RUB",
            owner_id=people[who],
            lost_reason="price" if stage == "lost" else None,
            tags=[],
            created_at=created,
            updated_at=created,
            closed_at=closed,
        )
        session.add(deal)
        session.flush()
        moves: list[tuple[int | None, int, datetime]] = [(None, stages["new"].id, created)]
        if closed is not None:
            moves.append((stages["new"].id, final.id, closed))
        for before, after, at in moves:
            session.add(
                DealStageChange(
                    deal_id=deal.id,
                    from_stage_id=before,
                    to_stage_id=after,
                    actor="test",
                    changed_at=at,
                )
            )
    return people


class Hubs:
    """Hub processes on one database, started and stopped like ``omnihub run``'s."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        self.settings = settings
        self.clock = clock
        self.running: list[web.AppRunner] = []

    async def start(self, role: ProcessRole = ProcessRole.ALL) -> web.Application:
        runner = web.AppRunner(create_app(self.settings, clock=self.clock, role=role))
        await runner.setup()  # the cleanup contexts: database, relay, the letters' loop
        self.running.append(runner)
        return runner.app

    async def stop(self) -> None:
        while self.running:
            await self.running.pop().cleanup()


@pytest.fixture
async def hubs(
    database_url: str, db: Database, smtp: SmtpCapture, clock: ManualClock, tmp_path: Path
) -> AsyncIterator[Hubs]:
    await db.write(_seed)
    clock.set(msk(30, 8, 59))
    made = Hubs(_settings(database_url, smtp, tmp_path), clock)
    try:
        yield made
    finally:
        await made.stop()


async def _letter_rows(db: Database) -> list[tuple[str, str]]:
    def work(session: Session) -> list[tuple[str, str]]:
        rows = session.execute(
            select(OutboxMessage.idempotency_key, OutboxMessage.status)
            .where(OutboxMessage.topic == LETTER_TOPIC)
            .order_by(OutboxMessage.id)
        )
        return [(key, status) for key, status in rows]

    return await db.read(work)


async def _all_delivered(db: Database, count: int) -> None:
    async def delivered() -> bool:
        rows = await _letter_rows(db)
        return len(rows) == count and all(s == OutboxStatus.DELIVERED.value for _, s in rows)

    await wait_until(delivered)


async def _nothing_more(app: web.Application, smtp: SmtpCapture, mails: int) -> None:
    """A pass (as the hub's loop runs it) queues nothing, and a few rounds of the hub's own
    loop and relay mail nothing more."""
    letters = WeeklyLetters(
        app[DATABASE], app[CLOCK], app[WEEKLY_LETTER], hours_of(app[ROUTING]), poll=1.0
    )
    assert await letters.run_once() == 0
    await asyncio.sleep(20 * POLL)
    assert len(smtp.messages) == mails


def _by_recipient(smtp: SmtpCapture) -> dict[str, list[EmailMessage]]:
    found: dict[str, list[EmailMessage]] = {}
    for envelope, mail in smtp.messages:
        (to,) = envelope.rcpt_tos
        found.setdefault(to, []).append(mail)
    return found


def _text(mail: EmailMessage) -> str:
    body = mail.get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def _html(mail: EmailMessage) -> str:
    body = mail.get_body(("html",))
    assert body is not None
    content: str = body.get_content()
    return content


async def test_one_letter_per_head_each_week_across_restarts(
    hubs: Hubs, db: Database, smtp: SmtpCapture, clock: ManualClock
) -> None:
    app = await hubs.start()
    # Before Monday 09:00 nothing is due.
    await _nothing_more(app, smtp, mails=0)
    assert await _letter_rows(db) == []

    # At 09:00 the hub's own loop queues one letter per active head; the relay mails them.
    clock.set(msk(30, 9))
    await _all_delivered(db, 2)
    mails = _by_recipient(smtp)
    assert sorted(mails) == ["gleb@example.test", "hanna@example.test"]
    (english,) = mails["hanna@example.test"]
    (russian,) = mails["gleb@example.test"]
    assert str(english["Subject"]) == "Weekly sales summary, 23-29 Nov"
    assert str(russian["Subject"]) == "Итоги недели продаж, 23-29 ноября"
    assert english["From"].addresses[0].addr_spec == SALES
    assert [a.addr_spec for a in english["To"].addresses] == ["hanna@example.test"]
    assert english["Message-ID"] != russian["Message-ID"]

    text = _text(english)
    assert "Hello, Hanna!" in text
    assert "The week 23-29 Nov 2026 (Europe/Moscow):" in text
    assert "New leads (deals created): 3" in text
    assert "Deals won: 2, revenue 1,500,250.50" in text
    assert "Deals lost: 1" in text
    assert (
        "Conversations received: 4, answered: 3; median first response 30 min (working time)"
        in text
    )
    assert (
        "- Ann: conversations 3, answered 2, median first response 60 min (working time); "
        "won 1 (1,500,000.00), lost 1"
    ) in text
    assert (
        "- Bob: conversations 1, answered 1, median first response 6 min (working time); "
        "won 1 (250.50), lost 0"
    ) in text
    link = "https://crm.example.com/reports?from=2026-11-23&to=2026-11-29"
    assert f"All reports: {link}" in text
    assert f'<a href="{link.replace("&", "&amp;")}">' in _html(english)
    words = _text(russian)
    assert "Здравствуйте, Gleb!" in words
    assert "Новые заявки (созданные сделки): 3" in words
    assert "Выиграно сделок: 2, выручка 1 500 250,50" in words
    assert "Обращений получено: 4, отвечено: 3; медиана первого ответа 30 мин" in words
    assert link in words

    # Later that week, the same hub and then a restarted one send nothing more.
    clock.set(msk(2, 15, month=12))
    await _nothing_more(app, smtp, mails=2)
    await hubs.stop()
    app = await hubs.start()
    await _nothing_more(app, smtp, mails=2)

    # The next Monday at 09:00: the week of 30 Nov - 6 Dec, once more one letter per head.
    clock.set(msk(7, 9, 0, month=12))
    await _all_delivered(db, 4)
    mails = _by_recipient(smtp)
    assert str(mails["hanna@example.test"][1]["Subject"]) == "Weekly sales summary, 30 Nov - 6 Dec"
    assert str(mails["gleb@example.test"][1]["Subject"]) == (
        "Итоги недели продаж, 30 ноября - 6 декабря"
    )
    # that week had Bob's Monday conversation and nothing else
    assert "Conversations received: 1, answered: 1" in _text(mails["hanna@example.test"][1])
    assert "New leads (deals created): 0" in _text(mails["hanna@example.test"][1])
    await _nothing_more(app, smtp, mails=4)


async def test_a_hub_down_at_the_moment_sends_that_week_but_never_for_past_weeks(
    hubs: Hubs, db: Database, smtp: SmtpCapture, clock: ManualClock
) -> None:
    # Down on Monday at 09:00, up on Wednesday: the letters go out then.
    clock.set(msk(2, 11, month=12))
    await hubs.start()
    await _all_delivered(db, 2)
    assert {str(m["Subject"]) for _, m in smtp.messages} == {
        "Weekly sales summary, 23-29 Nov",
        "Итоги недели продаж, 23-29 ноября",
    }
    await hubs.stop()

    # Down for all the next week: on Tuesday 15 Dec only the week just past is sent.
    clock.set(msk(15, 10, month=12))
    await hubs.start()
    await _all_delivered(db, 4)
    assert sorted(str(m["Subject"]) for _, m in smtp.messages[2:]) == [
        "Weekly sales summary, 7-13 Dec",
        "Итоги недели продаж, 7-13 декабря",
    ]

    def weeks(session: Session) -> list[str]:
        found = session.scalars(select(WeeklyLetter.week_start).distinct())
        return sorted(day.isoformat() for day in found)

    assert await db.read(weeks) == ["2026-11-23", "2026-12-07"]


async def test_the_letter_day_and_time_are_settings_and_a_new_head_gets_one_too(
    hubs: Hubs, db: Database, smtp: SmtpCapture, clock: ManualClock
) -> None:
    # On Sundays at 18:30: the letter sums up the last whole week (23-29 Nov), as on Mondays.
    hubs.settings = replace(hubs.settings, weekly_letter_day="sun", weekly_letter_time="18:30")
    clock.set(msk(6, 18, 29, month=12))
    app = await hubs.start()
    await _nothing_more(app, smtp, mails=0)
    clock.set(msk(6, 18, 30, month=12))
    await _all_delivered(db, 2)
    assert {str(m["Subject"]) for _, m in smtp.messages} == {
        "Weekly sales summary, 23-29 Nov",
        "Итоги недели продаж, 23-29 ноября",
    }

    # Ivan comes back as a head that same evening: his letter of the week goes out too.
    def rehire(session: Session) -> None:
        session.execute(update(Manager).where(Manager.name == "Ivan").values(active=True))

    await db.write(rehire)
    await _all_delivered(db, 3)
    (envelope, mail) = smtp.messages[2]
    assert envelope.rcpt_tos == ["ivan@example.test"]
    assert str(mail["Subject"]) == "Итоги недели продаж, 23-29 ноября"


@pytest.mark.postgres
async def test_two_workers_polling_at_once_send_one_letter_per_head(
    pg_url: str, smtp: SmtpCapture, clock: ManualClock, tmp_path: Path
) -> None:
    seed = Database(pg_url)
    passes = [Database(pg_url) for _ in range(4)]
    hubs = Hubs(_settings(pg_url, smtp, tmp_path), clock)
    try:
        await seed.write(_seed)
        clock.set(msk(30, 8, 59))
        first = await hubs.start(ProcessRole.WORKER)
        await hubs.start(ProcessRole.WORKER)
        # ... and four more passes, each on a database connection of its own, at once
        config, hours = first[WEEKLY_LETTER], hours_of(first[ROUTING])
        letters = [WeeklyLetters(p, clock, config, hours, poll=1.0) for p in passes]
        clock.set(msk(30, 9))
        queued = await asyncio.gather(*(one.run_once() for one in letters))
        assert sum(queued) <= 2
        await _all_delivered(seed, 2)
        await asyncio.sleep(20 * POLL)
        assert sorted(e.rcpt_tos[0] for e, _ in smtp.messages) == [
            "gleb@example.test",
            "hanna@example.test",
        ]

        def rows(session: Session) -> Any:
            return session.scalar(select(func.count()).select_from(WeeklyLetter))

        assert await seed.read(rows) == 2
        assert len(await _letter_rows(seed)) == 2
    finally:
        await hubs.stop()
        for database in (seed, *passes):
            await database.dispose()


async def test_a_refusal_that_may_heal_is_retried_and_one_that_cannot_is_not(
    hubs: Hubs, db: Database, smtp: SmtpCapture, clock: ManualClock
) -> None:
    smtp.fail_next("451 4.3.0 Try again later")
    clock.set(msk(30, 9))
    await hubs.start()

    def failed_once(session: Session) -> int:
        return (
            session.scalar(
                select(func.count()).where(
                    OutboxMessage.topic == LETTER_TOPIC,
                    OutboxMessage.status == OutboxStatus.PENDING.value,
                    OutboxMessage.attempts == 1,
                    OutboxMessage.last_error.is_not(None),
                )
            )
            or 0
        )

    async def one_left_pending() -> bool:
        # the failure is recorded (with its retry time) before the clock moves on
        return len(smtp.messages) == 1 and await db.read(failed_once) == 1

    await wait_until(one_left_pending)
    clock.advance(timedelta(minutes=1))  # past the retry's backoff
    await _all_delivered(db, 2)
    assert len(smtp.messages) == 2

    # Next week the server refuses one letter for good: that row expires, never retried.
    smtp.fail_next("554 5.7.1 Rejected")
    clock.set(msk(7, 9, month=12))

    async def settled() -> bool:
        statuses = [s for _, s in await _letter_rows(db)]
        return len(statuses) == 4 and OutboxStatus.PENDING.value not in statuses

    await wait_until(settled)
    statuses = [s for _, s in await _letter_rows(db)]
    assert sorted(statuses[2:]) == [OutboxStatus.DELIVERED.value, OutboxStatus.EXPIRED.value]
    clock.advance(timedelta(hours=2))
    await asyncio.sleep(20 * POLL)
    assert len(smtp.messages) == 3


async def test_a_worker_that_read_before_another_committed_queues_nothing(
    db: Database, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a second worker does when its read of the heads came before the first one's
    commit: its insert finds the rows taken and it queues no letter (ON CONFLICT)."""
    await db.write(_seed)
    schedule = LetterSchedule(0, time(9, 0), "Europe/Moscow")
    now = msk(30, 9)
    week = schedule.due(now)
    assert week is not None

    def heads(session: Session) -> list[int]:
        return [m.id for m in weekly_letter.heads_without_letter(session, week)]

    everyone = await db.read(heads)
    assert len(everyone) == 2
    stale = weekly_letter.heads_without_letter
    monkeypatch.setattr(
        weekly_letter,
        "heads_without_letter",
        lambda session, week: [session.get(Manager, i) for i in everyone],
    )
    queue = partial(
        weekly_letter.queue_letters, week=week, link="https://x/r", hours_of=_open, now=now
    )
    assert await db.write(queue) == 2
    assert await db.write(queue) == 0  # the same stale list: every row is taken
    monkeypatch.setattr(weekly_letter, "heads_without_letter", stale)
    assert await db.read(heads) == []
    assert [key for key, _ in await _letter_rows(db)] == [
        f"letter:{i}:2026-11-23" for i in everyone
    ]


def _open(team: str | None) -> WorkingHours:
    return ALWAYS_OPEN
