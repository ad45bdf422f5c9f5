"""Reports benchmark: how long the head of sales waits for each report on a big database.

Seeds a year of a sales department straight into a fresh database, in bulk (raw SQL
``executemany`` in one transaction per table on SQLite, ``COPY`` on PostgreSQL): 20
managers in two teams, ~80,000 contacts (a phone each, an email every other), 300,000
conversations (a touch each, with UTM
tags where the door has them), 1,000,000 messages, 100,000 deals in the consultation
funnel with their stage histories (most still open, some won with amounts and products,
some lost with reasons), calls on the phone line and call-back tasks for the missed
ones, a task per deal. Then it starts ``omnihub run`` on that database (a TOML config)
and times every report over HTTP as the head of sales calls it (one request at a time,
a head's API token), for the last full month and for the last 12 full months, next to
``/healthz`` measured in the same run: the first (cold) request, then p50 and p90 over
``--runs`` more.

Run as ``.venv/bin/python -m bench.reports [--postgres DSN | --no-postgres] [--scale 0.1]
[--deals 100000 --conversations 300000 --messages 1000000 --contacts 80000] [--runs 7]
[--profile DIR] [--keep DIR]``. Without ``--postgres`` it runs SQLite, and PostgreSQL too
if ``postgresql://postgres@127.0.0.1:5432/postgres`` answers; ``--profile`` records the
hub process with py-spy during one more request of each 12-month report (collapsed
stacks); ``--keep`` keeps the SQLite file there and the PostgreSQL database undropped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import psycopg

from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
ZONE = ZoneInfo("Europe/Moscow")
SEED = 20261201
TEAMS = ("Sales North", "Sales South")
MANAGERS = 20
HEAD_EMAIL = "head@bench.test"
ROUTING = """
teams:
{teams}
rules:
  - name: everything
    team: {first}
"""
TEAM_HOURS = """  {name}:
    mode: evenly
    hours:
      timezone: Europe/Moscow
      weekly: {{mon: ['09:00-18:00'], tue: ['09:00-18:00'], wed: ['09:00-18:00'],
               thu: ['09:00-18:00'], fri: ['09:00-18:00']}}
"""
# (channel, key, share of conversations, does the door carry UTM tags)
ACCOUNTS = (
    ("telegram", "bot", 0.33, False),
    ("email", "sales@bench.test", 0.14, False),
    ("phone", "line-1", 0.10, False),
    ("site_chat", "site", 0.20, True),
    ("form", "google-form", 0.09, True),
    ("form", "yandex-form", 0.06, True),
    ("ad_lead", "vk-ads", 0.08, True),
)
UTM = {
    "google": ("pg-trial", "pg-brand", "kafka-launch", "clickhouse-q2", "retarget"),
    "yandex": ("direct-pg", "direct-brand", "direct-k8s", "rsya-summer"),
    "vk": ("vk-lookalike", "vk-webinar", "vk-retarget"),
    "telegram": ("tg-channel-a", "tg-channel-b"),
    "newsletter": ("digest-monthly", "digest-launch"),
}
PRODUCTS = (
    ("pg-cluster", 0.35),
    ("mysql-cluster", 0.12),
    ("kafka", 0.10),
    ("redis", 0.10),
    ("clickhouse", 0.10),
    ("k8s", 0.10),
    ("s3", 0.08),
    ("support", 0.05),
)
LOST_REASONS = ("price", "competitor", "no budget", "no answer", "not a fit", "postponed")
# where an open deal stops: new, contact_made, needs_gathered, presentation, proposal, objections
OPEN_STOPS = (0.35, 0.25, 0.15, 0.12, 0.08, 0.05)
TEXTS = (
    "Hello, I would like a consultation about a PostgreSQL cluster",
    "How much is a managed Kafka with three brokers?",
    "Thank you, we will think it over",
    "Could you send the proposal by email?",
    "Здравствуйте, нужна консультация по кластеру",
)


@dataclass
class Rows:
    """One table's rows, in the order of ``columns``; datetimes are aware (UTC)."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Sizes:
    contacts: int
    conversations: int
    messages: int
    deals: int


@dataclass(frozen=True)
class Window:
    """The seeded year: from ``start`` (a month's first day, Moscow) to ``now``."""

    start: datetime
    now: datetime
    month: tuple[date, date]  # the last full month
    year: tuple[date, date]  # the last 12 full months


def window_of(now: datetime) -> Window:
    today = now.astimezone(ZONE).date()
    month_end = today.replace(day=1) - timedelta(days=1)
    month_start = month_end.replace(day=1)
    if month_start.month == 12:
        year_start = date(month_start.year, 1, 1)
    else:
        year_start = date(month_start.year - 1, month_start.month + 1, 1)
    start = datetime(year_start.year, year_start.month, 1, tzinfo=ZONE).astimezone(UTC)
    return Window(start, now, (month_start, month_end), (year_start, month_end))


def build(sizes: Sizes, window: Window, stages: Sequence[int], funnel_id: int) -> list[Rows]:
    """The whole data set, in the order the tables may be filled (references first)."""
    rng = random.Random(SEED)
    start, now = window.start, window.now
    span = (now - start).total_seconds() - 3600
    minute = timedelta(minutes=1)
    team_rows = Rows("teams", ("id", "name", "created_at", "shared_work"))
    for n, name in enumerate(TEAMS, start=1):
        team_rows.rows.append((n, name, start - timedelta(days=400), False))
    manager_rows = Rows(
        "managers",
        ("id", "email", "name", "role", "team_id", "capacity", "active", "locale", "created_at"),
    )
    team_of: dict[int, int] = {}
    for n in range(1, MANAGERS + 1):
        team_of[n] = 1 + (n - 1) % len(TEAMS)
        manager_rows.rows.append(
            (n, f"m{n}@bench.test", f"Manager {n}", "manager", team_of[n], 50, True, "ru",
             start - timedelta(days=300))
        )  # fmt: skip
    account_rows = Rows("channel_accounts", ("id", "channel", "key", "title", "created_at"))
    for n, (channel, key, _share, _utm) in enumerate(ACCOUNTS, start=1):
        account_rows.rows.append((n, channel, key, f"{channel} {key}", start - timedelta(days=500)))
    contact_rows = Rows(
        "contacts",
        ("id", "name", "company", "segment", "is_test", "created_at", "updated_at"),
    )
    for n in range(1, sizes.contacts + 1):
        created = start - timedelta(days=30) + timedelta(seconds=rng.random() * span)
        b2b = rng.random() < 0.4
        contact_rows.rows.append(
            (n, f"Client {n}", f"Company {n % 9000}" if b2b else None, "B2B" if b2b else "B2C",
             rng.random() < 0.003, created, created)
        )  # fmt: skip
    # a mobile number each (E.164, as the ingest stores it), an address for every other one
    identity_rows = Rows("contact_identities", ("id", "contact_id", "kind", "value", "created_at"))
    for n, person in enumerate(contact_rows.rows, start=1):
        identity_rows.rows.append((2 * n - 1, n, "phone", f"+7916{n:07d}", person[5]))
        if n % 2 == 0:
            identity_rows.rows.append((2 * n, n, "email", f"client{n}@example.test", person[5]))

    # conversations, a touch each (every new conversation is an arrival through a door)
    conversation_rows = Rows(
        "conversations",
        ("id", "contact_id", "channel_account_id", "status", "assignee_id", "team_id", "tags",
         "opened_at", "first_response_at", "last_message_at", "closed_at"),
    )  # fmt: skip
    touch_rows = Rows(
        "touches",
        ("id", "contact_id", "channel", "channel_account", "utm_source", "utm_medium",
         "utm_campaign", "occurred_at"),
    )  # fmt: skip
    opened_all = sorted(rng.random() * span for _ in range(sizes.conversations))
    weights = [a[2] for a in ACCOUNTS]
    account_ids = rng.choices(range(1, len(ACCOUNTS) + 1), weights=weights, k=sizes.conversations)
    sources = list(UTM)
    per_conversation = [sizes.messages // sizes.conversations] * sizes.conversations
    for n in rng.choices(range(sizes.conversations), k=sizes.messages % sizes.conversations):
        per_conversation[n] += 1
    message_rows = Rows(
        "messages",
        ("id", "conversation_id", "channel_account_id", "direction", "author_kind",
         "author_manager_id", "text", "attachments", "external_id", "delivery_status",
         "occurred_at", "created_at"),
    )  # fmt: skip
    conversations: list[tuple[int, int, int | None, datetime, int]] = []
    message_id = 0
    for index, offset in enumerate(opened_all):
        cid = index + 1
        contact = 1 + int(sizes.contacts * rng.random() ** 1.4)  # some clients come back often
        account = account_ids[index]
        opened = start + timedelta(seconds=offset)
        assignee = rng.randint(1, MANAGERS) if rng.random() < 0.96 else None
        answered: datetime | None = None
        if assignee is not None and rng.random() < 0.88:
            roll = rng.random()
            mean = 15.0 if roll < 0.7 else 180.0 if roll < 0.95 else 1800.0
            answered = min(now, opened + minute * (0.5 + rng.expovariate(1 / mean)))
        # messages: the client's first, the first reply at first_response_at, then turns
        moment = opened
        for k in range(per_conversation[index]):
            message_id += 1
            out = answered is not None and k % 2 == 1
            if k == 1 and answered is not None:
                moment = answered
            elif k > 0:
                moment = min(now, moment + minute * (1 + rng.expovariate(1 / 40)))
            message_rows.rows.append(
                (message_id, cid, account, "out" if out else "in",
                 "manager" if out else "contact", assignee if out else None,
                 TEXTS[message_id % len(TEXTS)], "[]", None if out else f"{cid}-{k}",
                 "delivered" if out else "received", moment, moment)
            )  # fmt: skip
        closed = moment + timedelta(hours=2) if moment < now - timedelta(days=14) else None
        conversation_rows.rows.append(
            (cid, contact, account, "closed" if closed else "open", assignee,
             team_of[assignee] if assignee else None, "[]", opened, answered, moment, closed)
        )  # fmt: skip
        channel, key, _share, tagged = ACCOUNTS[account - 1]
        utm_source = utm_campaign = utm_medium = None
        if tagged and rng.random() < 0.85:
            utm_source = rng.choice(sources)
            utm_campaign = rng.choice(UTM[utm_source])
            utm_medium = "cpc" if utm_source in ("google", "yandex", "vk") else "post"
        touch_rows.rows.append(
            (cid, contact, channel, key, utm_source, utm_medium, utm_campaign, opened)
        )
        conversations.append((contact, account, assignee, opened, cid))

    # deals: one in six to one in three conversations opens one, with its stage history
    deal_rows = Rows(
        "deals",
        ("id", "contact_id", "funnel_id", "stage_id", "is_open", "title", "amount", "currency",
         "product", "owner_id", "lost_reason", "source_touch_id", "tags", "conversation_id",
         "created_at", "updated_at", "closed_at"),
    )  # fmt: skip
    change_rows = Rows(
        "deal_stage_changes",
        ("id", "deal_id", "from_stage_id", "to_stage_id", "actor", "changed_at"),
    )
    task_rows = Rows(
        "tasks",
        ("id", "kind", "title", "status", "assignee_id", "author_id", "due_at", "done_at",
         "overdue_at", "contact_id", "deal_id", "conversation_id", "created_at"),
    )  # fmt: skip
    call_rows = Rows(
        "calls",
        ("id", "call_key", "channel_account_id", "contact_id", "conversation_id", "direction",
         "caller", "callee", "manager_id", "started_at", "answered_at", "ended_at",
         "duration_seconds", "disposition", "created_at"),
    )  # fmt: skip
    open_stages, won_stage, lost_stage = list(stages[:6]), stages[6], stages[7]
    products = [p for p, _ in PRODUCTS]
    product_weights = [w for _, w in PRODUCTS]
    phone = 1 + [a[0] for a in ACCOUNTS].index("phone")
    chosen = sorted(rng.sample(range(sizes.conversations), min(sizes.deals, sizes.conversations)))
    change_id = task_id = call_id = 0

    def task(kind: str, title: str, who: int, created: datetime, due_minutes: float,
             contact: int, deal: int | None, conversation: int) -> None:  # fmt: skip
        nonlocal task_id
        task_id += 1
        due = created + minute * due_minutes
        roll = rng.random()
        done = created + minute * rng.expovariate(1 / (due_minutes * 0.8))
        status = "done" if roll < 0.75 and done <= now else "cancelled" if roll < 0.8 else "open"
        done_at = done if status == "done" else None
        late = due < now and (done_at is None or done_at > due) and status != "cancelled"
        task_rows.rows.append(
            (task_id, kind, title, status, who, None, due, done_at, due if late else None,
             contact, deal, conversation, created)
        )  # fmt: skip

    for deal_id, index in enumerate(chosen, start=1):
        contact, account, assignee, opened, cid = conversations[index]
        owner = assignee or rng.randint(1, MANAGERS)
        created = min(now, opened + minute * rng.uniform(0.1, 5))
        roll = rng.random()
        path = [open_stages[0]]
        if roll < 0.36:  # won (14 %) or lost (22 %): the stages it went through, then the end
            won = roll < 0.14
            middle = rng.sample(open_stages[1:], rng.randint(1, 4) if won else rng.randint(0, 3))
            path += sorted(middle, key=open_stages.index)
            path.append(won_stage if won else lost_stage)
        else:
            stop_at = rng.choices(range(6), weights=OPEN_STOPS)[0]
            path += open_stages[1 : stop_at + 1]
        moments = [created]
        for _ in path[1:]:
            moments.append(moments[-1] + timedelta(hours=rng.expovariate(1 / 40)))
        while moments[-1] > now:  # not there yet: the deal is where it is today
            path.pop()
            moments.pop()
        final = path[-1]
        is_open = final in open_stages
        closed_at = None if is_open else moments[-1]
        amount = None
        if final == won_stage or rng.random() < 0.5:
            amount = Decimal(round(rng.lognormvariate(11.5, 0.9), -2) + 1000).quantize(
                Decimal("0.01")
            )
        product = rng.choices(products, weights=product_weights)[0] if rng.random() < 0.85 else None
        deal_rows.rows.append(
            (deal_id, contact, funnel_id, final, is_open, f"Deal {deal_id}", amount, "RUB",
             product, owner, rng.choice(LOST_REASONS) if final == lost_stage else None, cid,
             "[]", cid, created, moments[-1], closed_at)
        )  # fmt: skip
        previous: int | None = None
        for stage, moment in zip(path, moments, strict=True):
            change_id += 1
            change_rows.rows.append((change_id, deal_id, previous, stage, "bench", moment))
            previous = stage
        task("meeting", "Schedule the consultation", owner, created, 60, contact, deal_id, cid)
        if stages[4] in path:  # proposal_sent: the funnel's robot asks for a follow-up
            sent = moments[path.index(stages[4])]
            title = "Ask how the proposal landed"
            task("follow_up", title, owner, sent, 2880, contact, deal_id, cid)
        if rng.random() < 0.4:  # the owner calls the client
            call_id += 1
            at = min(now, created + minute * rng.uniform(10, 1440))
            talked = rng.random() < 0.7
            call_rows.rows.append(
                (call_id, f"sip:out-{call_id}", phone, contact, cid, "out", "101",
                 f"+7916{contact:07d}", owner, at, at if talked else None,
                 at + minute * 5, 300 if talked else 0, "answered" if talked else "missed", at)
            )  # fmt: skip
    for contact, account, assignee, opened, cid in conversations:
        if account != phone:
            continue
        call_id += 1
        roll = rng.random()
        disposition = "answered" if roll < 0.7 else "missed" if roll < 0.9 else "voicemail"
        talked = disposition == "answered"
        call_rows.rows.append(
            (call_id, f"sip:in-{call_id}", phone, contact, cid, "in", f"+7916{contact:07d}",
             "101", assignee if talked else None, opened, opened if talked else None,
             opened + minute * 4, 240 if talked else 0, disposition, opened)
        )  # fmt: skip
        if not talked and assignee is not None:
            task("call_back", "Call the client back", assignee, opened, 30, contact, None, cid)
    return [
        team_rows,
        manager_rows,
        account_rows,
        contact_rows,
        identity_rows,
        touch_rows,
        conversation_rows,
        message_rows,
        deal_rows,
        change_rows,
        call_rows,
        task_rows,
    ]


def _sqlite_value(column: str) -> Callable[[Any], Any] | None:
    if column.endswith("_at"):
        return lambda v: (
            None if v is None else v.replace(tzinfo=None).isoformat(" ", "microseconds")
        )
    if column == "amount":
        return lambda v: None if v is None else float(v)  # as SQLAlchemy binds Numeric there
    return None


def load_sqlite(path: Path, tables: list[Rows]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=OFF")
        connection.execute("PRAGMA synchronous=OFF")
        for rows in tables:
            convert = [(i, f) for i, c in enumerate(rows.columns) if (f := _sqlite_value(c))]

            def converted(items: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
                for row in items:
                    values = list(row)
                    for i, f in convert:  # noqa: B023 (used before the next table's)
                        values[i] = f(values[i])
                    yield tuple(values)

            marks = ", ".join("?" * len(rows.columns))
            names = ", ".join(f'"{c}"' for c in rows.columns)
            connection.execute("BEGIN")
            connection.executemany(
                f"INSERT INTO {rows.table} ({names}) VALUES ({marks})",  # noqa: S608 (ours)
                converted(rows.rows),
            )
            connection.execute("COMMIT")
        connection.execute("PRAGMA journal_mode=WAL")
    finally:
        connection.close()


def load_postgres(dsn: str, tables: list[Rows]) -> None:
    with psycopg.connect(dsn, autocommit=False) as connection:
        with connection.cursor() as cursor:
            # the rows reference each other correctly by construction: skip the per-row
            # foreign key triggers while loading (a superuser's bulk-load setting)
            cursor.execute("SET session_replication_role = replica")
            for rows in tables:
                names = ", ".join(f'"{c}"' for c in rows.columns)
                with cursor.copy(f"COPY {rows.table} ({names}) FROM STDIN") as copy:
                    for row in rows.rows:
                        copy.write_row(row)
            for rows in tables:
                table = rows.table  # the bench's own names, not input
                cursor.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                    f"(SELECT max(id) FROM {table}))"
                )
        connection.commit()
        connection.autocommit = True
        # what autovacuum does soon after such a load: statistics and the visibility map
        connection.execute("VACUUM ANALYZE")


def consultation_stages(url: str) -> tuple[int, list[int]]:
    sql = (
        "SELECT f.id, s.id FROM stages s JOIN funnels f ON f.id = s.funnel_id "
        "WHERE f.code = 'consultation' ORDER BY s.position"
    )
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            found = connection.execute(sql).fetchall()
    else:
        with psycopg.connect(plain_dsn(url)) as connection:
            found = connection.execute(sql).fetchall()
    return int(found[0][0]), [int(s) for _, s in found]


def plain_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@dataclass
class Case:
    label: str
    path: str
    token: bool = True
    first: float = math.nan
    timings: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    size: int = 0


def cases_of(window: Window) -> list[Case]:
    found = [Case("healthz (baseline)", "/healthz", token=False)]
    periods = (("month", window.month), ("12 months", window.year))
    reports = (
        ("activity", "activity"),
        ("funnel", "funnel"),
        ("sources", "sources"),
        ("abc-xyz by client", "abc-xyz?by=client"),
        ("abc-xyz by product", "abc-xyz?by=product"),
    )
    for name, endpoint in reports:
        for label, (first, last) in periods:
            glue = "&" if "?" in endpoint else "?"
            query = f"{glue}from={first.isoformat()}&to={last.isoformat()}"
            found.append(Case(f"{name}, {label}", f"/api/v1/reports/{endpoint}{query}"))
    return found


def process_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


async def time_cases(
    base: str, token: str, cases: list[Case], runs: int, budget: float, hub: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for case in cases:
            spent = 0.0
            for attempt in range(runs + 1):
                cpu = process_cpu(hub)
                started = time.perf_counter()
                sent = headers if case.token else {}
                async with session.get(base + case.path, headers=sent) as r:
                    body = await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{case.path} answered {r.status}: {body[:300]!r}")
                took = time.perf_counter() - started
                case.size = len(body)
                if attempt == 0:
                    case.first = took
                    continue
                case.timings.append(took)
                case.cpu.append(process_cpu(hub) - cpu)
                spent += took
                if spent > budget and attempt >= 3:
                    break
            print(f"  {line(case)}", flush=True)


def line(case: Case) -> str:
    ordered = sorted(case.timings)
    p50, p90 = percentile(ordered, 0.5), percentile(ordered, 0.9)
    cpu = sorted(case.cpu)
    verdict = "" if case.label.startswith("healthz") else ("ok" if p50 < 1 else "SLOW")
    return (
        f"{case.label:<30} first {_ms(case.first)}  p50 {_ms(p50)}  p90 {_ms(p90)}"
        f"  hub CPU p50 {_ms(percentile(cpu, 0.5))}  n={len(ordered)}"
        f"  {case.size / 1024:7.1f} KiB  {verdict}"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms" if seconds < 10 else f"{seconds:8.2f} s "


def py_spy() -> str | None:
    for candidate in (os.environ.get("PY_SPY"), "/tmp/pyspy/bin/py-spy", shutil.which("py-spy")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


async def profile_cases(
    base: str, token: str, cases: list[Case], hub: int, folder: Path, tag: str
) -> None:
    spy = py_spy()
    if spy is None:
        print("  no py-spy (set PY_SPY or `pip install py-spy --target /tmp/pyspy`): no profile")
        return
    headers = {"Authorization": f"Bearer {token}"}
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for case in cases:
            if not case.token or "12 months" not in case.label:
                continue
            name = case.label.replace(", 12 months", "").replace(" ", "-")
            out = folder / f"{tag}-{name}.txt"
            recorder = await asyncio.create_subprocess_exec(
                spy, "record", "--pid", str(hub), "--rate", "250", "--format", "raw",
                "--output", str(out),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            await asyncio.sleep(1.0)  # py-spy attaches
            async with session.get(base + case.path, headers=headers) as r:
                await r.read()
            recorder.send_signal(signal.SIGINT)
            await asyncio.wait_for(recorder.wait(), 60)
            print(f"  profile of {case.label}: {out}")


@dataclass(frozen=True)
class Prepared:
    """A seeded database and how to run a hub on it."""

    config: Path
    env: dict[str, str]
    token: str  # the head of sales' API token


def prepare(
    label: str, url: str, tmp: Path, sizes: Sizes, window: Window, cache: dict[str, Any]
) -> Prepared:
    """Migrate ``url``, seed it in bulk (the rows built once per run), add a head of sales."""
    print(f"\n== {label}: {url}", flush=True)
    config = tmp / f"{label}.toml"
    routing = tmp / "routing.yaml"
    hours = "".join(TEAM_HOURS.format(name=t) for t in TEAMS)
    routing.write_text(ROUTING.format(teams=hours, first=TEAMS[0]))
    config.write_text(
        f'database_url = "{url}"\nrouting_file = "{routing}"\ntimezone = "Europe/Moscow"\n'
        f'log_level = "WARNING"\nmedia_dir = "{tmp / "media"}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    omnihub(env, "--config", str(config), "migrate")
    funnel_id, stages = consultation_stages(url)
    started = time.perf_counter()
    if cache.get("key") != (funnel_id, tuple(stages)):
        cache["tables"] = build(sizes, window, stages, funnel_id)
        cache["key"] = (funnel_id, tuple(stages))
        print(f"built the rows in {time.perf_counter() - started:.1f} s", flush=True)
    tables: list[Rows] = cache["tables"]
    started = time.perf_counter()
    if url.startswith("sqlite:///"):
        load_sqlite(Path(url.removeprefix("sqlite:///")), tables)
    else:
        load_postgres(plain_dsn(url), tables)
    counts = ", ".join(f"{r.table} {len(r.rows):,}" for r in tables[3:])
    print(f"seeded in {time.perf_counter() - started:.1f} s: {counts}", flush=True)
    omnihub(env, "--config", str(config), "create-manager", "--email", HEAD_EMAIL,
            "--name", "Head of sales", "--role", "head", "--no-password")  # fmt: skip
    token = omnihub(
        env, "--config", str(config), "create-token", "--name", "reports",
        "--manager-email", HEAD_EMAIL,
    ).strip().splitlines()[-1]  # fmt: skip
    return Prepared(config, env, token)


def run_database(
    label: str,
    url: str,
    tmp: Path,
    sizes: Sizes,
    window: Window,
    args: argparse.Namespace,
    cache: dict[str, Any],
) -> list[Case]:
    prepared = prepare(label, url, tmp, sizes, window, cache)
    config, env, token = prepared.config, prepared.env, prepared.token
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cases = cases_of(window)
    with (tmp / f"{label}-hub.log").open("w") as log:
        hub = subprocess.Popen(
            [OMNIHUB, "--config", str(config), "run", "--port", str(port)],
            env=env, cwd=tmp, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        asyncio.run(wait_ready(f"{base}/healthz", hub, 200))
        print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
        print(f"month {window.month[0]}..{window.month[1]}, "
              f"12 months {window.year[0]}..{window.year[1]}", flush=True)  # fmt: skip
        asyncio.run(time_cases(base, token, cases, args.runs, args.budget, hub.pid))
        print("load average (1, 5, 15 min): {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
        if args.profile:
            Path(args.profile).mkdir(parents=True, exist_ok=True)
            asyncio.run(profile_cases(base, token, cases, hub.pid, Path(args.profile), label))
    finally:
        stop(hub)
    return cases


def postgres_answers(dsn: str) -> bool:
    async def ping() -> None:
        connection = await asyncpg.connect(dsn, timeout=3)
        await connection.close()

    try:
        asyncio.run(ping())
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    return True


def fresh_postgres(stack: contextlib.ExitStack, admin_dsn: str, keep: bool) -> str:
    name = f"omnihub_bench_reports_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    if keep:
        print(f"keeping the PostgreSQL database {name}")
    else:
        stack.callback(drop)
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres", help=f"admin DSN (default: {DEFAULT_POSTGRES} if it answers)")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--scale", type=float, default=1.0, help="a fraction of every count")
    parser.add_argument("--contacts", type=int, default=80_000)
    parser.add_argument("--conversations", type=int, default=300_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--deals", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7, help="timed requests per report")
    parser.add_argument(
        "--budget",
        type=float,
        default=60.0,
        help="seconds of timed requests per report (3 at least)",
    )
    parser.add_argument("--profile", metavar="DIR", help="py-spy the 12-month reports into DIR")
    parser.add_argument("--keep", metavar="DIR", help="keep the databases (SQLite file in DIR)")
    args = parser.parse_args()
    sizes = Sizes(
        contacts=max(100, int(args.contacts * args.scale)),
        conversations=max(100, int(args.conversations * args.scale)),
        messages=max(100, int(args.messages * args.scale)),
        deals=max(10, int(args.deals * args.scale)),
    )
    window = window_of(datetime.now(UTC))
    postgres = args.postgres
    if postgres is None and not args.no_postgres:
        postgres = DEFAULT_POSTGRES if postgres_answers(DEFAULT_POSTGRES) else None
        if postgres is None:
            print(f"PostgreSQL at {DEFAULT_POSTGRES} does not answer: SQLite only")
    results: dict[str, list[Case]] = {}
    cache: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder, contextlib.ExitStack() as stack:
        tmp = Path(folder)
        keep = Path(args.keep) if args.keep else None
        if not args.no_sqlite:
            where = (keep or tmp) / f"reports-{os.getpid()}.sqlite3"
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                print(f"keeping the SQLite database {where}")
            url = f"sqlite:///{where}"
            results["SQLite"] = run_database("sqlite", url, tmp, sizes, window, args, cache)
        if postgres:
            dsn = fresh_postgres(stack, postgres, keep is not None)
            url = dsn.replace("postgresql://", "postgresql+asyncpg://", 1)
            results["PostgreSQL"] = run_database("postgres", url, tmp, sizes, window, args, cache)
    print(f"\nreports as the head of sales calls them ({sizes}), one request at a time:")
    for database, cases in results.items():
        print(f"-- {database}")
        for case in cases:
            print(f"  {line(case)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
