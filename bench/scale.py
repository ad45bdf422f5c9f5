"""Scaled-mode benchmark: ``omnihub web`` x1 and x2 (plus one ``omnihub worker``) on a fresh
PostgreSQL database against the bare aiohttp handler, then the delay from a commit on web 1
to the event on an inbox socket of web 2, and the integrity checks of ``bench.ingest``.

Run as ``.venv/bin/python -m bench.scale [--rounds 4] [--seconds 5] [--concurrency 32]
[--postgres DSN] [--redis URL] [--events 300]``. The three targets take turns round by
round (the order reversed every other round); the two hub configurations are the same
processes, loaded through web 1 alone or through both web processes evenly, and share one
workload, so the checks cover every request the hub answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from bench.ingest import (
    SEED,
    Database,
    Outcome,
    Stats,
    Workload,
    check_database,
    drive,
    fresh_postgres,
    hub_env,
    line,
    seed,
    start_baseline,
    stats_of,
)
from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready

ADMIN_EMAIL = "admin@bench.test"
ADMIN_PASSWORD = "bench-admin-password"  # a throwaway database, dropped at the end
CLIENTS = 10  # the latency part's clients, writing in turn
GAP_SECONDS = 0.05  # mean pause between its commits (exponential)


@dataclass
class Target:
    """One thing under load: its base URLs (spread over evenly) and its measured rounds."""

    label: str
    bases: tuple[str, ...]
    token: str
    load: Workload
    rounds: list[Stats] = field(default_factory=list)
    measured: list[Outcome] = field(default_factory=list)
    busy: float = 0.0  # CPU seconds of the whole machine during the rounds
    idle: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by process

    def total(self) -> Stats:
        elapsed = sum(r.requests / r.rps for r in self.rounds if r.rps)
        return stats_of(self.measured, elapsed)


def start_role(
    stack: contextlib.ExitStack, env: dict[str, str], tmp: Path, log: TextIO, *args: str
) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = subprocess.Popen(
        [OMNIHUB, *args, "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=log
    )
    stack.callback(stop, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_ready(base + "/healthz", process, 200))
    return base, process


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the machine since boot, all cores (Linux)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / tick, idle / tick


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of one process (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL process on the machine (not only this run's)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if (entry / "comm").read_text().startswith("postgres"):
                    found[int(entry.name)] = process_cpu(int(entry.name))
    return found


def hub_cpu(hubs: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far: the hub's processes, all of PostgreSQL, this load generator."""
    return {
        **{name: process_cpu(pid) for name, pid in hubs.items()},
        "postgres (all)": sum(postgres_cpu().values()),  # those that exit are lost
        "load generator": time.process_time(),
    }


def run_rounds(
    targets: list[Target],
    hubs: dict[str, int],
    rounds: int,
    seconds: float,
    conc: int,
    warm: float,
) -> None:
    """``hubs``: the hub's processes by name and pid, whose CPU time each round takes."""
    for target in targets:
        if warm > 0:  # checked like the rest, not timed
            asyncio.run(drive(target.bases, target.token, warm, conc, target.load))
    for n in range(rounds):
        for target in targets if n % 2 == 0 else targets[::-1]:
            first = len(target.load.outcomes)
            (busy, idle), cpu = machine_cpu(), hub_cpu(hubs)
            stats = asyncio.run(drive(target.bases, target.token, seconds, conc, target.load))
            (busy_after, idle_after), cpu_after = machine_cpu(), hub_cpu(hubs)
            target.busy += busy_after - busy
            target.idle += idle_after - idle
            for name, used in cpu_after.items():
                target.cpu[name] = target.cpu.get(name, 0.0) + used - cpu[name]
            target.rounds.append(stats)
            target.measured.extend(target.load.outcomes[first:])
            print(f"round {n + 1}  " + line(target.label, stats), flush=True)


def cpu_line(target: Target) -> str:
    """Where the CPU went during a target's rounds."""
    elapsed = sum(r.requests / r.rps for r in target.rounds if r.rps)
    share = target.busy / (target.busy + target.idle) if target.busy + target.idle else 0.0
    per_process = ", ".join(f"{k} {v / elapsed:.2f}" for k, v in target.cpu.items())
    return f"{target.label:<9} machine {share:4.0%} busy; cores used: {per_process}"


@dataclass
class Delays:
    """Per committed message: when its POST was sent and answered, when web 2's socket
    told of it (``perf_counter`` seconds), and how often it did."""

    sent: dict[int, float] = field(default_factory=dict)
    answered: dict[int, float] = field(default_factory=dict)
    heard: dict[int, float] = field(default_factory=dict)
    times_heard: Counter[int] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


async def _listen(socket: aiohttp.ClientWebSocketResponse, delays: Delays) -> None:
    async for frame in socket:
        if frame.type != aiohttp.WSMsgType.TEXT:
            delays.failures.append(f"socket: {frame.type} {frame.data}")
            return
        event = frame.json()
        if event.get("event") == "message.created":
            message_id = int(event["message_id"])
            delays.heard.setdefault(message_id, time.perf_counter())
            delays.times_heard[message_id] += 1


def _telegram_body(client: int, n: int) -> dict[str, Any]:
    """A message by Telegram, a channel a reply can take (the bot itself is not configured:
    the worker fails to deliver the replies, which does not concern the events)."""
    return {
        "channel": "telegram",
        "channel_account": "sales_bot",
        "external_id": f"live-{client}-{n}",
        "sender": {
            "identities": [
                {"kind": "phone", "value": f"+7999555{client:04d}"},
                {"kind": "telegram", "value": f"555{client:04d}"},
            ]
        },
        "text": f"live {n}",
    }


async def measure_live(first: str, second: str, token: str, events: int) -> Delays:
    """Commits through ``first`` (3 inbound messages, then a reply, in turn), one at a
    time at random moments; the admin's inbox socket on ``second`` hears each."""
    delays = Delays()
    jar = aiohttp.CookieJar(unsafe=True)  # 127.0.0.1: one session for both processes
    async with aiohttp.ClientSession(
        cookie_jar=jar, timeout=aiohttp.ClientTimeout(total=30)
    ) as browser:
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        async with browser.post(second + "/api/v1/session", json=login) as response:
            if response.status != 200:
                raise RuntimeError(f"login on web 2: {response.status} {await response.text()}")
            csrf = (await response.json())["csrf_token"]
        async with browser.ws_connect(second + "/api/v1/live") as socket:
            if (await socket.receive_json(timeout=10)).get("event") != "hello":
                raise RuntimeError("the socket on web 2 did not say hello")
            listener = asyncio.create_task(_listen(socket, delays))
            conversations: dict[int, int] = {}
            bearer = {"Authorization": f"Bearer {token}"}
            rng = random.Random(SEED)
            for n in range(events):
                client = n % CLIENTS
                if n % 4 == 3 and client in conversations:
                    kind = "reply"
                    url = f"{first}/api/v1/conversations/{conversations[client]}/messages"
                    body: dict[str, Any] = {"text": f"reply {n}"}
                    headers = {"X-CSRF-Token": csrf}
                else:
                    kind, url, headers = "inbound", first + "/api/v1/inbound", bearer
                    body = _telegram_body(client, n)
                sent = time.perf_counter()
                async with browser.post(url, json=body, headers=headers) as response:
                    data = await response.json()
                    answered = time.perf_counter()
                    if response.status not in (201, 202):
                        delays.failures.append(f"{kind}: {response.status} {data}")
                        continue
                message_id = int(data["message_id"])
                conversations[client] = int(data["conversation_id"])
                delays.kinds[kind] += 1
                delays.sent[message_id], delays.answered[message_id] = sent, answered
                # the next commit at a random moment: not in step with the relay's polling
                await asyncio.sleep(rng.expovariate(1 / GAP_SECONDS))
            deadline = time.perf_counter() + 15
            while set(delays.sent) - set(delays.heard) and time.perf_counter() < deadline:
                if listener.done():
                    raise RuntimeError(f"the socket closed: {delays.failures}")
                await asyncio.sleep(0.01)
            for message_id in sorted(set(delays.sent) - set(delays.heard)):
                delays.failures.append(f"message {message_id}: not heard within 15 s")
            await asyncio.sleep(1)  # a repeated event, if any, would come now
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
    return delays


def ms(values: list[float], q: float) -> str:
    return f"{percentile(sorted(values), q) * 1e3:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per target, alternated")
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0, help="untimed seconds per target")
    parser.add_argument("--events", type=int, default=300, help="commits timed to web 2's socket")
    parser.add_argument(
        "--postgres",
        metavar="DSN",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="a fresh database is made on this PostgreSQL (and dropped at the end)",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        default="redis://127.0.0.1:6379/0",
        help="the hub's keys there are prefixed by a digest of its (fresh) database",
    )
    parser.add_argument(
        "--outbox-poll-seconds",
        type=float,
        help="the worker's outbox_poll_seconds (default: the hub's own default)",
    )
    args = parser.parse_args()
    print(
        f"cpu_count: {os.cpu_count()}   rounds: {args.rounds} x {args.seconds} s per target "
        f"after {args.warmup} s of warm-up   concurrency: {args.concurrency}   "
        f"python: {sys.version.split()[0]}   database: postgresql, 1 worker   "
        f"outbox_poll_seconds: {args.outbox_poll_seconds or 'default'}"
    )
    with tempfile.TemporaryDirectory(prefix="omnihub-scale-") as tmp:
        log_path = Path(tmp) / "hub.log"
        try:
            with log_path.open("w") as log, contextlib.ExitStack() as stack:
                database = Database(
                    Path(tmp) / "unused.sqlite3", fresh_postgres(stack, args.postgres)
                )
                env = hub_env(database)
                env.update(
                    OMNIHUB_REDIS_URL=args.redis,
                    OMNIHUB_MIGRATE_ON_START="false",
                    OMNIHUB_SESSION_COOKIE_SECURE="false",
                    OMNIHUB_MEDIA_DIR=str(Path(tmp) / "media"),
                    BENCH_ADMIN_PASSWORD=ADMIN_PASSWORD,
                )
                if args.outbox_poll_seconds is not None:
                    env["OMNIHUB_OUTBOX_POLL_SECONDS"] = str(args.outbox_poll_seconds)
                omnihub(env, "migrate")
                token = seed(env)
                omnihub(
                    env, "create-manager", "--email", ADMIN_EMAIL, "--name", "Admin",
                    "--role", "admin", "--password-env", "BENCH_ADMIN_PASSWORD",
                )  # fmt: skip
                baseline = start_baseline(stack)
                _, worker = start_role(stack, env, Path(tmp), log, "worker")
                web1, first_web = start_role(
                    stack, env, Path(tmp), log, "web", "--host", "127.0.0.1"
                )
                web2, second_web = start_role(
                    stack, env, Path(tmp), log, "web", "--host", "127.0.0.1"
                )
                hubs = {"web 1": first_web.pid, "web 2": second_web.pid, "worker": worker.pid}
                hub_load = Workload(random.Random(SEED))
                targets = [
                    Target("baseline", (baseline.base,), "baseline", baseline.load),
                    Target("1 web", (web1,), token, hub_load),
                    Target("2 webs", (web1, web2), token, hub_load),
                ]
                run_rounds(targets, hubs, args.rounds, args.seconds, args.concurrency, args.warmup)
                checks = check_database(database, hub_load.outcomes)  # before more messages
                delays = asyncio.run(measure_live(web1, web2, token, args.events))
        except RuntimeError as exc:
            tail = "".join(log_path.read_text().splitlines(True)[-30:])
            print(f"run failed: {exc}\nhub log tail:\n{tail}", file=sys.stderr)
            return 2
    failures = [o for o in hub_load.outcomes if o.status not in (200, 201)]
    for o in failures[:5]:
        print(f"hub error: {o.status} {o.external_id} ({o.request.kind}): {o.error}")
    base, one, two = (t.total() for t in targets)
    print("\n=== summary ===")
    print(f"cpu_count: {os.cpu_count()}")
    for target, stats in zip(targets, (base, one, two), strict=True):
        print(line(target.label, stats))
    for target in targets[1:]:
        ratios = [h.rps / b.rps for h, b in zip(target.rounds, targets[0].rounds, strict=True)]
        print(
            f"{target.label}/baseline: {target.total().rps / base.rps:.3f} of the req/s "
            f"(per round: {', '.join(f'{r:.3f}' for r in ratios)})"
        )
    print(f"2 webs / 1 web: {two.rps / one.rps:.2f}x the req/s")
    for target in targets:
        print(cpu_line(target))
    statuses = Counter(o.status for o in hub_load.outcomes)
    kinds = Counter(o.request.kind for o in hub_load.outcomes)
    print(
        f"hub requests, warm-up included: {len(hub_load.outcomes)} sent ({kinds['new']} new, "
        f"{kinds['reuse']} phone reuses, {kinds['retry']} retries); 201: {statuses[201]}, "
        f"200: {statuses[200]}, errors: {len(failures)}"
    )
    heard = [m for m in delays.answered if m in delays.heard]
    from_answer = [delays.heard[m] - delays.answered[m] for m in heard]
    from_send = [delays.heard[m] - delays.sent[m] for m in heard]
    print(
        f"commit on web 1 -> event on a socket of web 2, {len(heard)} events "
        f"({delays.kinds['inbound']} inbound, {delays.kinds['reply']} replies), at random moments:"
    )
    for label, values in (("answer (committed)", from_answer), ("send", from_send)):
        print(f"  from the POST's {label:<19} p50 {ms(values, 0.5)}   p99 {ms(values, 0.99)}")
    repeated = [m for m, n in delays.times_heard.items() if n > 1]
    checks += [
        (
            "every commit through web 1 reached the socket on web 2",
            not delays.failures and len(heard) == args.events,
            f"{len(heard)}/{args.events} heard; {delays.failures[:3]}",
        ),
        ("no event reached the socket twice", not repeated, f"repeated: {repeated[:5]}"),
    ]
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} - {detail}")
    failed = sum(not ok for _, ok, _ in checks)
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
