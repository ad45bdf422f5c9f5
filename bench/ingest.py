"""Ingest benchmark: a bare aiohttp baseline vs. ``omnihub run`` on SQLite, then integrity checks.

Run as ``.venv/bin/python -m bench.ingest [--rounds 4] [--seconds 5] [--concurrency 32]``.
The two servers run side by side and take turns, round by round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import asyncpg

from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready

INBOUND = "/api/v1/inbound"
ROOT = Path(__file__).resolve().parents[1]
MANAGERS = 5
RETRY_SHARE = 0.05  # exact repeats of an earlier answered body
REUSE_SHARE = 0.10  # an earlier sender's phone in another format, new external_id
SEED = 20240917
RU_NAMES = (
    ("Иван", "ivan"),
    ("Алексей", "aleksey"),
    ("Дмитрий", "dmitry"),
    ("Сергей", "sergey"),
    ("Андрей", "andrey"),
    ("Михаил", "mikhail"),
    ("Никита", "nikita"),
    ("Павел", "pavel"),
)
RU_SURNAMES = (
    ("Иванов", "ivanov"),
    ("Петров", "petrov"),
    ("Смирнов", "smirnov"),
    ("Кузнецов", "kuznetsov"),
    ("Соколов", "sokolov"),
    ("Волков", "volkov"),
    ("Морозов", "morozov"),
    ("Лебедев", "lebedev"),
)
EN_NAMES = ("John", "Emily", "Michael", "Sarah", "David", "Laura", "James", "Anna")
EN_SURNAMES = ("Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clarke", "Walker", "Hughes")
MOBILE_CODES = (903, 905, 909, 915, 916, 917, 925, 926, 977, 985, 999)
DOMAINS = ("mail.ru", "yandex.ru", "gmail.com", "example.com", "bk.ru")
TEXTS = (
    "Здравствуйте! Сколько стоит управляемый кластер PostgreSQL на 3 узла?",
    "Добрый день. Нужен managed Kafka, пришлите, пожалуйста, прайс.",
    "Интересует S3-хранилище на 50 ТБ. Есть ли скидки при оплате за год?",
    "Можно ли перенести наш кластер PostgreSQL к вам без простоя? Перезвоните мне.",
    "Hi, what is the price of a managed PostgreSQL cluster with 16 vCPU and 64 GB RAM?",
    "Hello! Do you offer a free trial for managed Kubernetes? We need it next week.",
    "Please send a quote for two dedicated servers in the Moscow region.",
)
SOURCES = ("yandex", "google", "vk")
CAMPAIGNS = ("pg_managed_autumn", "k8s_launch", "s3_storage_promo", "brand_search")
PHONE_FORMATS: tuple[Callable[[str], str], ...] = (
    lambda n: f"+7 {n[:3]} {n[3:6]} {n[6:8]} {n[8:]}",
    lambda n: f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
    lambda n: f"7{n}",
    lambda n: f"+7{n}",
)


@dataclass(slots=True)
class Request:
    kind: str  # "new", "reuse" (earlier phone, other format) or "retry" (same body)
    body: dict[str, Any]
    phone: str  # the E.164 form the hub should store
    source: Outcome | None = None


@dataclass(slots=True)
class Outcome:
    request: Request
    status: int  # 0 for a client-side error (connection, timeout)
    latency: float
    data: dict[str, Any] | None = None  # the response JSON of a 200/201
    error: str = ""

    @property
    def external_id(self) -> str:
        return str(self.request.body["external_id"])


@dataclass(slots=True)
class Workload:
    """Generates the bodies and keeps every outcome (one event loop: no locking needed)."""

    rng: random.Random
    outcomes: list[Outcome] = field(default_factory=list)
    answered: list[Outcome] = field(default_factory=list)  # 200 or 201
    created: list[Outcome] = field(default_factory=list)  # 201
    counter: int = 0

    def next_request(self) -> Request:
        roll = self.rng.random()
        if roll < RETRY_SHARE and self.answered:
            src = self.rng.choice(self.answered)
            return Request("retry", src.request.body, src.request.phone, src)
        self.counter += 1
        ext = f"bench-{self.counter:07d}-{self.rng.getrandbits(32):08x}"
        if roll < RETRY_SHARE + REUSE_SHARE and self.created:
            src = self.created[self.rng.randrange(len(self.created))]
            national = src.request.phone[2:]
            before = src.request.body["sender"]["identities"][0]["value"]
            formats = [f for f in PHONE_FORMATS if f(national) != before]
            body = self._body(ext, self.rng.choice(formats)(national))
            return Request("reuse", body, src.request.phone, src)
        national = f"{self.rng.choice(MOBILE_CODES)}{self.rng.randrange(10**7):07d}"
        body = self._body(ext, self.rng.choice(PHONE_FORMATS)(national))
        return Request("new", body, f"+7{national}")

    def _body(self, ext: str, phone: str) -> dict[str, Any]:
        rng = self.rng
        if rng.random() < 0.6:
            (first, first_lat), (last, last_lat) = rng.choice(RU_NAMES), rng.choice(RU_SURNAMES)
        else:
            first, last = rng.choice(EN_NAMES), rng.choice(EN_SURNAMES)
            first_lat, last_lat = first.lower(), last.lower()
        identities = [{"kind": "phone", "value": phone}]
        if rng.random() < 0.5:  # unique per message, so no email ever joins two senders
            email = f"{first_lat}.{last_lat}.{self.counter}@{rng.choice(DOMAINS)}"
            identities.append({"kind": "email", "value": email})
        return {
            "channel": "api",
            "channel_account": "website",
            "external_id": ext,
            "sender": {"name": f"{first} {last}", "identities": identities},
            "text": rng.choice(TEXTS),
            "attribution": {
                "utm_source": rng.choice(SOURCES),
                "utm_medium": "cpc",
                "utm_campaign": rng.choice(CAMPAIGNS),
            },
            "funnel": None,
        }

    def record(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)
        if outcome.status in (200, 201):
            self.answered.append(outcome)
        if outcome.status == 201:
            self.created.append(outcome)


@dataclass(frozen=True, slots=True)
class Stats:
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    statuses: Counter[int]


async def worker(
    session: aiohttp.ClientSession, deadline: float, load: Workload, url: str = INBOUND
) -> None:
    while time.perf_counter() < deadline:
        request = load.next_request()
        started = time.perf_counter()
        data: dict[str, Any] | None = None
        error = ""
        try:
            async with session.post(url, json=request.body) as response:
                status = response.status
                if status in (200, 201):
                    data = await response.json()
                else:
                    error = (await response.text())[:300]
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"
        load.record(Outcome(request, status, time.perf_counter() - started, data, error))


async def drive(
    base_url: str | Sequence[str], token: str, seconds: float, concurrency: int, load: Workload
) -> Stats:
    """One round of load; ``load`` keeps its outcomes across rounds. Given several base
    URLs (processes of one hub), the concurrent workers are spread evenly over them."""
    first = len(load.outcomes)
    bases = [base_url] if isinstance(base_url, str) else list(base_url)
    async with aiohttp.ClientSession(
        # the connector's limit equals the concurrency: one connection per worker
        connector=aiohttp.TCPConnector(limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=60),
        headers={"Authorization": f"Bearer {token}"},
    ) as session:
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(
            *(
                worker(session, deadline, load, bases[n % len(bases)] + INBOUND)
                for n in range(concurrency)
            )
        )
        elapsed = time.perf_counter() - started
    return stats_of(load.outcomes[first:], elapsed)


def stats_of(outcomes: list[Outcome], elapsed: float) -> Stats:
    latencies = sorted(o.latency for o in outcomes)
    return Stats(
        len(latencies),
        len(latencies) / elapsed,
        percentile(latencies, 0.50) * 1e3,
        percentile(latencies, 0.99) * 1e3,
        Counter(o.status for o in outcomes),
    )


@dataclass
class Server:
    """A server under load: its base URL, its token, and every outcome of its rounds."""

    base: str
    token: str
    load: Workload
    rounds: list[Stats] = field(default_factory=list)
    measured_from: int = 0  # outcomes before this index were the warm-up

    def total(self) -> Stats:
        elapsed = sum(r.requests / r.rps for r in self.rounds if r.rps)
        return stats_of(self.load.outcomes[self.measured_from :], elapsed)


def start_baseline(stack: contextlib.ExitStack) -> Server:
    port = free_port()
    # As a module from the repository root: a script's own folder would come first on
    # sys.path, where bench/email.py would hide the standard library's email package.
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_server", str(port)], cwd=ROOT)
    stack.callback(stop, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_ready(base + INBOUND, process, 405))  # GET on a POST-only route
    return Server(base, "baseline", Workload(random.Random(SEED)))


@dataclass(frozen=True)
class Database:
    """Where the hub under load keeps its data: a SQLite file or a fresh PostgreSQL database."""

    sqlite_path: Path
    pg_dsn: str | None = None

    @property
    def url(self) -> str:
        if self.pg_dsn is None:
            return f"sqlite:///{self.sqlite_path}"
        return self.pg_dsn.replace("postgresql://", "postgresql+asyncpg://", 1)


def fresh_postgres(stack: contextlib.ExitStack, admin_dsn: str) -> str:
    """A new, empty database on the PostgreSQL of ``admin_dsn``, dropped at the end."""
    name = f"omnihub_bench_{os.getpid()}"

    async def run(sql: str) -> None:
        con = await asyncpg.connect(admin_dsn)
        try:
            await con.execute(sql)
        finally:
            await con.close()

    asyncio.run(run(f"DROP DATABASE IF EXISTS {name}"))
    asyncio.run(run(f"CREATE DATABASE {name}"))
    stack.callback(lambda: asyncio.run(run(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def hub_env(database: Database) -> dict[str, str]:
    """The environment of a hub process on ``database``, no other ``OMNIHUB_`` setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = database.url
    return env


def seed(env: dict[str, str]) -> str:
    """The managers routing shares the load among; an integration token for the load."""
    for n in range(1, MANAGERS + 1):
        omnihub(
            env, "create-manager", "--email", f"m{n}@bench.test", "--name", f"M{n}", "--no-password"
        )
    return omnihub(env, "create-token", "--name", "bench").strip().splitlines()[-1]


def start_hub(stack: contextlib.ExitStack, tmp: Path, log: TextIO, database: Database) -> Server:
    env = hub_env(database)
    token = seed(env)
    port = free_port()
    process = subprocess.Popen(
        [OMNIHUB, "run", "--port", str(port)],
        env=env,
        cwd=tmp,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    stack.callback(lambda: print(f"hub process exit code: {process.returncode}"))
    stack.callback(stop, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_ready(base + "/healthz", process, 200))
    return Server(base, token, Workload(random.Random(SEED)))


def run_rounds(
    baseline: Server, hub: Server, rounds: int, seconds: float, concurrency: int, warmup: float
) -> None:
    """Alternate the two servers round by round (ABBA order), so that the machine's
    slow and fast moments fall on both alike, after a warm-up of each that is checked
    like the rest but not timed (first-use costs: imports, caches, metadata)."""
    for server in (baseline, hub):
        if warmup > 0:
            asyncio.run(drive(server.base, server.token, warmup, concurrency, server.load))
        server.measured_from = len(server.load.outcomes)
    for n in range(rounds):
        order = (baseline, hub) if n % 2 == 0 else (hub, baseline)
        for server in order:
            stats = asyncio.run(drive(server.base, server.token, seconds, concurrency, server.load))
            server.rounds.append(stats)
            label = "baseline" if server is baseline else "hub"
            print(f"round {n + 1}  " + line(label, stats), flush=True)


QUERIES = {
    "stored": "SELECT external_id, id FROM messages WHERE direction = 'in'",
    "merged": "SELECT id, merged_into_id FROM contacts",
    "repeated": "SELECT kind, value, COUNT(*) FROM contact_identities "
    "GROUP BY kind, value HAVING COUNT(*) > 1",
    "phones": "SELECT value, contact_id FROM contact_identities WHERE kind = 'phone'",
}


def read_back(database: Database) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the checks need, from either database."""
    if database.pg_dsn is None:
        con = sqlite3.connect(database.sqlite_path)
        try:
            return {name: con.execute(sql).fetchall() for name, sql in QUERIES.items()}
        finally:
            con.close()
    dsn = database.pg_dsn

    async def fetch() -> dict[str, list[tuple[Any, ...]]]:
        con = await asyncpg.connect(dsn)
        try:
            return {name: [tuple(r) for r in await con.fetch(sql)] for name, sql in QUERIES.items()}
        finally:
            await con.close()

    return asyncio.run(fetch())


def check_database(database: Database, outcomes: list[Outcome]) -> list[tuple[str, bool, str]]:
    rows = read_back(database)
    stored: dict[str, list[int]] = {}  # inbound external_id -> message ids
    for ext, message_id in rows["stored"]:
        stored.setdefault(ext, []).append(message_id)
    merged_into: dict[int, int | None] = dict(rows["merged"])
    repeated = rows["repeated"]
    phone_owner: dict[str, int] = dict(rows["phones"])

    def survivor(contact_id: int) -> int:
        for _ in range(len(merged_into) + 1):
            parent = merged_into.get(contact_id)
            if parent is None:
                return contact_id
            contact_id = parent
        raise RuntimeError(f"merged_into_id cycle at contact {contact_id}")

    bad: dict[str, list[str]] = {"rows": [], "dups": [], "reuse": [], "owner": []}
    for o in outcomes:
        request, data, ext = o.request, o.data, o.external_id
        if request.kind == "retry" and o.status != 200:
            bad["dups"].append(f"retry {ext}: status {o.status}")
        if data is None:
            continue
        contact = survivor(data["contact_id"])
        if stored.get(ext) != [data["message_id"]]:
            where = "rows" if o.status == 201 else "dups"
            bad[where].append(f"{ext}: answered {data['message_id']}, rows {stored.get(ext)}")
        if data["duplicate"] != (o.status == 200):
            bad["dups"].append(f"{ext}: status {o.status} with duplicate={data['duplicate']}")
        earlier = request.source.data if request.source else None
        if request.kind == "reuse" and earlier and survivor(earlier["contact_id"]) != contact:
            bad["reuse"].append(f"{ext}: contact {contact}, earlier {earlier['contact_id']}")
        owner = phone_owner.get(request.phone)
        if owner is None or survivor(owner) != contact:
            bad["owner"].append(f"{request.phone}: owner {owner}, answered {contact}")
    ids_201 = {o.external_id for o in outcomes if o.status == 201}
    total_in = sum(len(ids) for ids in stored.values())
    statuses = Counter(o.status for o in outcomes)
    reuses = sum(o.request.kind == "reuse" and o.status == 201 for o in outcomes)

    def result(name: str, key: str, note: str = "") -> tuple[str, bool, str]:
        items = bad[key]
        return name, not items, note + (f"{len(items)} bad, e.g. {items[:3]}" if items else "ok")

    return [
        result("every 201 external_id has one inbound row with the answered message id", "rows"),
        (
            "inbound messages == distinct external_ids that got 201",
            total_in == len(ids_201) == statuses[201],
            f"{total_in} rows, {len(ids_201)} distinct ids, {statuses[201]} 201s",
        ),
        result(
            "every 200 is a duplicate of a stored message; every retry got 200",
            "dups",
            f"{statuses[200]} 200s: ",
        ),
        ("(kind, value) unique in contact_identities", not repeated, f"repeated: {repeated[:3]}"),
        result(
            "phone-reuse requests land on the earlier contact (after merges)",
            "reuse",
            f"{reuses} reuses: ",
        ),
        result("each sent phone's E.164 identity belongs to the answered contact", "owner"),
        (
            "no status other than 200/201",
            set(statuses) <= {200, 201},
            ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())),
        ),
    ]


def line(label: str, stats: Stats) -> str:
    return (
        f"{label:<9} {stats.rps:9.1f} req/s   p50 {stats.p50_ms:7.2f} ms   "
        f"p99 {stats.p99_ms:7.2f} ms   ({stats.requests} requests)"
    )


def tail(log_path: Path, lines: int = 30) -> str:
    return "hub log tail:\n" + "".join(log_path.read_text().splitlines(True)[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per server, alternated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per server")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        help="run the hub on a fresh database of this PostgreSQL instead of SQLite "
        "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)",
    )
    args = parser.parse_args()
    print(
        f"cpu_count: {os.cpu_count()}   rounds: {args.rounds} x {args.seconds} s per server "
        f"after {args.warmup} s of warm-up   "
        f"concurrency: {args.concurrency}   python: {sys.version.split()[0]}   "
        f"database: {'postgresql' if args.postgres else 'sqlite'}"
    )
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-") as tmp:
        log_path = Path(tmp) / "hub.log"
        try:
            with log_path.open("w") as log, contextlib.ExitStack() as stack:
                database = Database(Path(tmp) / "bench.sqlite3")
                if args.postgres:
                    database = Database(database.sqlite_path, fresh_postgres(stack, args.postgres))
                baseline = start_baseline(stack)
                hub = start_hub(stack, Path(tmp), log, database)
                run_rounds(baseline, hub, args.rounds, args.seconds, args.concurrency, args.warmup)
                checks = check_database(database, hub.load.outcomes)
        except RuntimeError as exc:
            print(f"hub run failed: {exc}\n{tail(log_path)}", file=sys.stderr)
            return 2
        load = hub.load
        failures = [o for o in load.outcomes if o.status not in (200, 201)]
        for o in failures[:5]:
            print(f"hub error: {o.status} {o.external_id} ({o.request.kind}): {o.error}")
        if failures:
            print(tail(log_path))
    base_total, hub_total = baseline.total(), hub.total()
    ratios = sorted(h.rps / b.rps for h, b in zip(hub.rounds, baseline.rounds, strict=True))
    per_round = ", ".join(f"{r:.3f}" for r in ratios)
    kinds = Counter(o.request.kind for o in load.outcomes)
    print("\n=== summary ===")
    print(f"cpu_count: {os.cpu_count()}")
    print(line("baseline", base_total))
    print(line("hub", hub_total))
    print(
        f"hub/baseline: {hub_total.rps / base_total.rps:.3f} of the req/s "
        f"(per round: {per_round}; median {statistics.median(ratios):.3f}), "
        f"p50 x{hub_total.p50_ms / base_total.p50_ms:.1f}, "
        f"p99 x{hub_total.p99_ms / base_total.p99_ms:.1f}"
    )
    statuses = Counter(o.status for o in load.outcomes)
    print(
        f"hub requests, warm-up included: {len(load.outcomes)} sent ({kinds['new']} new, "
        f"{kinds['reuse']} phone reuses, {kinds['retry']} retries); 201: {statuses[201]}, "
        f"200: {statuses[200]}, errors: {len(failures)}"
    )
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} - {detail}")
    failed = sum(not ok for _, ok, _ in checks)
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
