"""Site chat benchmark: idle visitor sockets held by one hub process, then visitor messages
through the widget's socket against a bare aiohttp WebSocket handler, then integrity checks.

1. Opens ``--sockets`` idle visitor sockets on one ``omnihub run`` (SQLite), each a new
   visitor (``hello`` from a page of the widget's allowed origin, answered by ``welcome``),
   and prints the hub process's RSS (``VmRSS``) before and after: KiB per socket.
2. With those sockets still open, ``--visitors`` more visitors each send ``--messages``
   messages a round (unique client ids, up to ``--window`` unacknowledged per socket),
   in ``--rounds`` rounds alternated with the same pattern against ``bench.bare_server``'s
   ``/ws`` (one parsed JSON frame in, one ack frame out): messages/s of each and the ratio.
   A bare round repeats the pattern (new client ids) until ``--bare-seconds`` have passed,
   or it would be over in a tenth of a second; each process's CPU is measured too.
3. Counts the hub's inbound site chat rows against the distinct client ids sent (nothing
   lost or doubled), resends ``--resend`` acknowledged client ids and counts again, and
   checks that every idle socket is still open.

Run as ``.venv/bin/python -m bench.widget [--sockets 2000] [--visitors 50] [--messages 50]
[--rounds 2] [--window 8] [--bare-seconds 1]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready
from bench.scale import process_cpu

ROOT = Path(__file__).resolve().parents[1]
ORIGIN = "https://bench.example"
KEY = "bench"
SOCKET = "/widget/v1/socket"
MANAGERS = 5
HUGE = 1_000_000  # the widget's limits, so that the bench is not throttled
SEED = 20261201
WARM_SOCKETS = 20  # opened and closed before the first RSS reading
STORED = (
    "SELECT m.id, m.external_id FROM messages m "
    "JOIN channel_accounts a ON a.id = m.channel_account_id "
    "WHERE a.channel = 'site_chat' AND m.direction = 'in'"
)
CONFIG = """\
database_url = "sqlite:///{database}"
media_dir = "{media}"
session_cookie_secure = false

[channels.site_chat]
[[channels.site_chat.widgets]]
key = "{key}"
allowed_origins = ["{origin}"]
title = "Bench"

[channels.site_chat.widgets.limits]
sessions_per_minute = {huge}
messages_per_minute = {huge}
sockets_per_address = {huge}
"""


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (the hub inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def rss_kib(pid: int) -> int:
    """The resident set of a process, in KiB (Linux)."""
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def database_kib(database: Path) -> int:
    """The SQLite file and its write-ahead log, in KiB."""
    files = (database, database.with_name(database.name + "-wal"))
    return sum(f.stat().st_size for f in files if f.exists()) // 1024


def hello() -> dict[str, Any]:
    page = {"url": f"{ORIGIN}/pricing?utm_source=bench", "referrer": None, "origin": ORIGIN}
    return {"type": "hello", "key": KEY, "token": None, "page": page, "user": None}


def start_hub(stack: contextlib.ExitStack, tmp: Path, log: TextIO) -> tuple[str, int, Path]:
    """``omnihub run`` with one widget on a fresh SQLite file: its URL, pid and database."""
    database = tmp / "bench.sqlite3"
    config = tmp / "omnihub.toml"
    config.write_text(
        CONFIG.format(database=database, media=tmp / "media", key=KEY, origin=ORIGIN, huge=HUGE)
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_CONFIG"] = str(config)
    for n in range(1, MANAGERS + 1):  # whom routing assigns the visitors' conversations to
        omnihub(env, "create-manager", "--email", f"m{n}@bench.test", "--name", f"M{n}",
                "--no-password")  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [OMNIHUB, "run", "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=log
    )
    stack.callback(lambda: print(f"hub process exit code: {process.returncode}"))
    stack.callback(stop, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_ready(base + "/healthz", process, 200))
    return base, process.pid, database


def start_bare(stack: contextlib.ExitStack) -> tuple[str, int]:
    port = free_port()
    # As a module from the repository root (see bench/__init__.py).
    process = subprocess.Popen([sys.executable, "-m", "bench.bare_server", str(port)], cwd=ROOT)
    stack.callback(stop, process)
    base = f"http://127.0.0.1:{port}"
    asyncio.run(wait_ready(base + "/api/v1/inbound", process, 405))  # GET on a POST-only route
    return base, process.pid


async def visit(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    """A new visitor's socket, after its welcome."""
    socket = await session.ws_connect(url, origin=ORIGIN, autoping=True)
    await socket.send_json(hello())
    frame = await socket.receive(timeout=30)
    if frame.type is not aiohttp.WSMsgType.TEXT or json.loads(frame.data)["type"] != "welcome":
        await socket.close()
        raise RuntimeError(f"no welcome: {frame.type.name} {frame.data!r}"[:300])
    return socket


@dataclass
class Idle:
    """Idle visitors: their sockets, and a reader each (answers pings, notes what comes)."""

    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    readers: list[asyncio.Task[None]] = field(default_factory=list)
    frames: Counter[str] = field(default_factory=Counter)  # what the idle ones were sent
    closed: Counter[str] = field(default_factory=Counter)  # why one closed before the end

    async def read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in socket:
            if frame.type is aiohttp.WSMsgType.TEXT:
                self.frames[str(json.loads(frame.data).get("type"))] += 1
        self.closed[f"close {socket.close_code}"] += 1


async def open_idle(
    session: aiohttp.ClientSession, url: str, count: int, concurrency: int, idle: Idle
) -> float:
    """Opens ``count`` idle visitors, ``concurrency`` at a time; their rate per second."""
    left = iter(range(count))

    async def opener() -> None:
        for _ in left:
            socket = await visit(session, url)
            idle.sockets.append(socket)
            idle.readers.append(asyncio.create_task(idle.read(socket)))

    started = time.perf_counter()
    await asyncio.gather(*(opener() for _ in range(concurrency)))
    return count / (time.perf_counter() - started)


@dataclass
class Talk:
    """What one target answered to the messages sent through it."""

    acks: dict[str, list[int]] = field(default_factory=dict)  # "visitor/client id" -> ids
    errors: list[str] = field(default_factory=list)
    other: Counter[str] = field(default_factory=Counter)  # frames that were no answer
    latencies: list[float] = field(default_factory=list)


async def talk(
    socket: aiohttp.ClientWebSocketResponse,
    who: int,
    client_ids: list[str],
    window: int,
    into: Talk,
) -> None:
    """Sends the messages on one socket, at most ``window`` not yet answered, and reads
    up to the answer of the last."""
    slots = asyncio.Semaphore(window)
    sent_at: dict[str, float] = {}
    waiting = set(client_ids)

    async def reader() -> None:
        try:
            await answers()
        except BaseException:
            for _ in range(window):  # the sender must not wait for a slot that never comes
                slots.release()
            raise

    async def answers() -> None:
        while waiting:
            message = await socket.receive(timeout=60)
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"visitor {who}: socket {message.type.name} {message.data!r}")
            frame = json.loads(message.data)
            kind, client_id = frame.get("type"), frame.get("id")
            key = f"{who}/{client_id}"
            if kind == "ack" and client_id not in waiting and key in into.acks:
                into.acks[key].append(int(frame["message"]["id"]))  # acked twice
                continue
            if kind not in ("ack", "error") or client_id not in waiting:
                shown = frame.get("message") if kind == "message" else None
                into.other[f"{kind} from {shown.get('from')}" if shown else str(kind)] += 1
                continue
            waiting.discard(client_id)
            into.latencies.append(time.perf_counter() - sent_at[client_id])
            if kind == "ack":
                into.acks.setdefault(key, []).append(int(frame["message"]["id"]))
            else:
                into.errors.append(f"{key}: {frame.get('code')} {frame.get('message')}")
            slots.release()

    reading = asyncio.create_task(reader())
    try:
        for client_id in client_ids:
            await slots.acquire()
            if reading.done():
                break
            sent_at[client_id] = time.perf_counter()
            text = f"Message {client_id}: how much is a managed PostgreSQL cluster?"
            await socket.send_json({"type": "message", "id": client_id, "text": text})
        await reading
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


@dataclass
class Target:
    """One server under the message load, its visitors' sockets and its measured rounds."""

    label: str
    url: str
    pid: int
    min_seconds: float  # a round repeats the pattern (new client ids) until this long
    sockets: list[aiohttp.ClientWebSocketResponse] = field(default_factory=list)
    talk: Talk = field(default_factory=Talk)
    rounds: list[float] = field(default_factory=list)  # messages/s
    sent: int = 0
    measured: int = 0  # answered in the measured rounds
    elapsed: float = 0.0
    cpu: float = 0.0  # CPU seconds of the server process during the measured rounds
    load_cpu: float = 0.0  # ... and of this load generator

    @property
    def answered(self) -> int:
        return len(self.talk.acks) + len(self.talk.errors)

    async def send(self, ids: list[list[str]], window: int) -> None:
        """Visitor ``n`` sends ``ids[n]``."""
        await asyncio.gather(
            *(talk(s, n, ids[n], window, self.talk) for n, s in enumerate(self.sockets))
        )
        self.sent += sum(len(i) for i in ids)

    async def round(self, name: str, messages: int, window: int) -> float:
        """One measured round; the messages answered a second."""
        cpu, load, before = process_cpu(self.pid), time.process_time(), self.answered
        started = time.perf_counter()
        repeat = 0
        while repeat == 0 or time.perf_counter() - started < self.min_seconds:
            await self.send(client_ids(f"{name}-{repeat}", len(self.sockets), messages), window)
            repeat += 1
        elapsed = time.perf_counter() - started
        self.elapsed += elapsed
        self.measured += self.answered - before
        self.cpu += process_cpu(self.pid) - cpu
        self.load_cpu += time.process_time() - load
        self.rounds.append((self.answered - before) / elapsed)
        return self.rounds[-1]


def client_ids(name: str, visitors: int, per_visitor: int) -> list[list[str]]:
    return [[f"{name}-v{v}-m{m}" for m in range(per_visitor)] for v in range(visitors)]


def stored(database: Path) -> list[tuple[int, str]]:
    con = sqlite3.connect(database)
    try:
        return [(int(i), str(e)) for i, e in con.execute(STORED).fetchall()]
    finally:
        con.close()


async def run(args: argparse.Namespace, hub_base: str, hub_pid: int, bare_base: str,
              bare_pid: int, database: Path) -> list[tuple[str, bool, str]]:  # fmt: skip
    hub_url = hub_base.replace("http://", "ws://") + SOCKET
    bare_url = bare_base.replace("http://", "ws://") + "/ws"
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(connector=connector) as session:
        # 1. memory per idle socket
        warm = Idle()
        await open_idle(session, hub_url, WARM_SOCKETS, 4, warm)
        for socket in warm.sockets:
            await socket.close()
        await asyncio.gather(*warm.readers)
        await asyncio.sleep(1.0)
        before, stored_before = rss_kib(hub_pid), database_kib(database)
        idle = Idle()
        rate = await open_idle(session, hub_url, args.sockets, args.open_concurrency, idle)
        await asyncio.sleep(2.0)
        after, stored_after = rss_kib(hub_pid), database_kib(database)
        per_socket = (after - before) / args.sockets
        # each new visitor is a row: SQLite's page cache in the hub holds some of it
        grown = f"the database grew by {stored_after - stored_before} KiB with the visitors' rows"
        print(
            f"idle sockets: {args.sockets} opened at {rate:.0f}/s (hello -> welcome, "
            f"{args.open_concurrency} at a time); hub RSS {before / 1024:.1f} MiB -> "
            f"{after / 1024:.1f} MiB: {per_socket:.1f} KiB per socket; {grown}",
            flush=True,
        )

        # 2. messages/s, the hub against the bare handler, with the idle sockets open
        hub = Target("hub", hub_url, hub_pid, 0.0)
        bare = Target("bare", bare_url, bare_pid, args.bare_seconds)
        for target in (bare, hub):
            for _ in range(args.visitors):
                target.sockets.append(await visit(session, target.url))
            # untimed warm-up: each visitor's first message (on the hub, it opens the
            # conversation, the contact and the deal)
            await target.send(client_ids("warm", args.visitors, 1), args.window)
        for n in range(args.rounds):
            for target in (bare, hub) if n % 2 == 0 else (hub, bare):
                rate = await target.round(f"r{n + 1}", args.messages, args.window)
                memory = f"  hub RSS {rss_kib(hub_pid) / 1024:.1f} MiB" if target is hub else ""
                print(
                    f"round {n + 1}  {target.label:<5} {rate:8.0f} messages/s{memory}", flush=True
                )

        # 3. nothing lost or doubled
        rows = stored(database)
        acked = hub.talk.acks
        checks: list[tuple[str, bool, str]] = []
        doubled = [k for k, ids in acked.items() if len(ids) != 1]
        checks.append(
            (
                "every message sent to the hub got one ack, no error",
                len(acked) == hub.sent and not doubled and not hub.talk.errors,
                f"{hub.sent} sent, {len(acked)} acked, {len(doubled)} acked twice, "
                f"{len(hub.talk.errors)} errors {hub.talk.errors[:3]}",
            )
        )
        row_ids = Counter(i for i, _ in rows)
        ack_ids = {ids[0] for ids in acked.values()}
        client_parts = Counter(e.split(":", 1)[1] for _, e in rows)
        checks.append(
            (
                "inbound site chat rows == distinct client ids sent, one row per acked id",
                len(rows) == hub.sent == len(set(row_ids)) == len(ack_ids)
                and set(row_ids) == ack_ids
                and all(c == 1 for c in client_parts.values()),
                f"{len(rows)} rows, {hub.sent} distinct client ids, {len(ack_ids)} acked "
                f"message ids, {sum(c > 1 for c in client_parts.values())} client ids twice",
            )
        )
        chosen = random.Random(SEED).sample(sorted(acked), min(args.resend, len(acked)))
        again: dict[int, list[str]] = {}
        for key in chosen:
            who, cid = key.split("/", 1)
            again.setdefault(int(who), []).append(cid)
        repeat = Talk()
        await asyncio.gather(
            *(talk(hub.sockets[w], w, ids, args.window, repeat) for w, ids in again.items())
        )
        same = [k for k in chosen if repeat.acks.get(k) == acked[k]]
        rows_after = stored(database)
        checks.append(
            (
                f"{len(chosen)} acked client ids sent again: acked with the same message, "
                "no new row",
                len(same) == len(chosen) and not repeat.errors and len(rows_after) == len(rows),
                f"{len(same)} same acks, {len(repeat.errors)} errors, rows {len(rows)} -> "
                f"{len(rows_after)}",
            )
        )
        still_open = sum(not s.closed for s in idle.sockets)
        checks.append(
            (
                "every idle socket still open after the load",
                still_open == args.sockets,
                f"{still_open} of {args.sockets} open; they were sent {dict(idle.frames)}; "
                f"closed: {dict(idle.closed)}",
            )
        )
        print(
            f"frames besides the answers: hub {dict(hub.talk.other)}, bare {dict(bare.talk.other)}"
        )
        for socket in [*hub.sockets, *bare.sockets, *idle.sockets]:
            await socket.close()
        await asyncio.gather(*idle.readers, return_exceptions=True)
        await asyncio.sleep(2.0)
        closed = rss_kib(hub_pid)

    print("\n=== summary ===")
    print(f"cpu_count: {os.cpu_count()}   python: {sys.version.split()[0]}   database: sqlite")
    print(
        f"idle sockets: {args.sockets}; hub RSS {before} KiB -> {after} KiB "
        f"(+{after - before} KiB): {per_socket:.1f} KiB per socket ({grown}); "
        f"{closed} KiB after the load, all sockets closed"
    )
    total = {}
    for target in (bare, hub):
        total[target.label] = target.measured / target.elapsed
        ordered = sorted(target.talk.latencies)
        print(
            f"{target.label:<5} {total[target.label]:8.0f} messages/s over {target.measured} "
            f"in {target.elapsed:.1f} s (rounds: {', '.join(f'{r:.0f}' for r in target.rounds)}), "
            f"ack p50 {percentile(ordered, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(ordered, 0.99) * 1000:.1f} ms; CPU cores used: server "
            f"{target.cpu / target.elapsed:.2f}, load generator "
            f"{target.load_cpu / target.elapsed:.2f}"
        )
    print(
        f"hub/bare: {total['hub'] / total['bare']:.4f} of the messages/s "
        f"(visitors: {args.visitors}, window {args.window}, idle sockets open: {args.sockets})"
    )
    return checks


def tail(log_path: Path, lines: int = 30) -> str:
    return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sockets", type=int, default=2000, help="idle visitor sockets")
    parser.add_argument("--open-concurrency", type=int, default=32, help="opened at a time")
    parser.add_argument("--visitors", type=int, default=50, help="visitors sending messages")
    parser.add_argument("--messages", type=int, default=50, help="per visitor and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per server, alternated")
    parser.add_argument("--window", type=int, default=8, help="unacknowledged per socket")
    parser.add_argument(
        "--bare-seconds",
        type=float,
        default=1.0,
        help="a bare round repeats the pattern (new client ids) until this long",
    )
    parser.add_argument("--resend", type=int, default=100, help="acked client ids sent again")
    args = parser.parse_args()
    counts = ("sockets", "open_concurrency", "visitors", "messages", "rounds", "window")
    for name in counts:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')}: at least 1")
    # the idle sockets, the talking ones, both ends of each in the two processes, the
    # database and some spare
    limit = raise_fd_limit(args.sockets + 2 * args.visitors + 256)
    print(
        f"cpu_count: {os.cpu_count()}   open files limit: {limit}   idle sockets: {args.sockets}"
        f"   visitors: {args.visitors} x {args.messages} messages x {args.rounds} rounds"
        f"   window: {args.window}",
        flush=True,
    )
    if limit < args.sockets + 2 * args.visitors + 64:
        print(f"the open files limit ({limit}) is too low for {args.sockets} sockets")
        return 2
    with tempfile.TemporaryDirectory(prefix="omnihub-bench-") as folder:
        tmp = Path(folder)
        log_path = tmp / "hub.log"
        try:
            with log_path.open("w") as log, contextlib.ExitStack() as stack:
                bare, bare_pid = start_bare(stack)
                hub, pid, database = start_hub(stack, tmp, log)
                checks = asyncio.run(run(args, hub, pid, bare, bare_pid, database))
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            print(f"bench failed: {type(exc).__name__}: {exc}\n{tail(log_path)}", file=sys.stderr)
            return 2
        errors = [row for row in log_path.read_text(errors="replace").splitlines()
                  if "ERROR" in row or "Traceback" in row]  # fmt: skip
        if errors:
            print(f"hub log: {len(errors)} error lines, e.g.\n" + "\n".join(errors[:5]))
    for name, ok, detail in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name} - {detail}")
    failed = sum(not ok for _, ok, _ in checks)
    print(f"{len(checks) - failed}/{len(checks)} checks passed")
    return 1 if failed or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
