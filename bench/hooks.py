"""Webhooks benchmark: landing-page form hooks vs. a bare aiohttp handler, then the signed
outbound webhooks those leads cause, checked for loss, doubles and signatures.

Run as ``.venv/bin/python -m bench.hooks [--seconds 8] [--concurrency 32]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready

BARE_SERVER = Path(__file__).with_name("bare_server.py")  # the baseline of bench/ingest.py
INBOUND = "/api/v1/inbound"
HOOK = "/hooks/forms/bench"
TOKEN = "bench-form-token"
SECRET = "whsec_" + base64.b64encode(b"bench-outbound-webhooks-secret!!").decode()
REPEAT_SHARE = 0.05


@dataclass
class Load:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    sent: int = 0


def body(n: int) -> dict[str, Any]:
    return {
        "name": f"Bench Lead {n}",
        "phone": f"+7916{n:07d}",
        "email": f"lead{n}@bench.test",
        "comment": "Сколько стоит управляемый кластер PostgreSQL?",
        "page_url": f"https://pg.example/?utm_source=yandex&utm_campaign=bench&yclid={n}",
    }


async def drive(url: str, seconds: float, concurrency: int, hub: bool) -> Load:
    load = Load()
    counter = iter(range(1, 10**7))
    deadline = time.perf_counter() + seconds
    rng = random.Random(20261127)

    async def worker(session: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            if hub and load.keys and rng.random() < REPEAT_SHARE:
                key = rng.choice(load.keys)  # an exact repeat: must not become a second lead
                n = int(key.split("-")[1])
            else:
                n = next(counter)
                key = f"bench-{n}"
            headers = {"X-Hook-Token": TOKEN, "Idempotency-Key": key}
            started = time.perf_counter()
            async with session.post(url, json=body(n), headers=headers) as response:
                await response.read()
                status = response.status
            load.latencies.append(time.perf_counter() - started)
            load.statuses[status] = load.statuses.get(status, 0) + 1
            load.sent += 1
            if key not in load.seen:
                load.seen.add(key)
                load.keys.append(key)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return load


def report(label: str, load: Load, seconds: float) -> float:
    ordered = sorted(load.latencies)
    rate = load.sent / seconds
    print(
        f"{label:<10} {rate:8.0f} req/s   p50 {percentile(ordered, 0.5) * 1000:6.1f} ms   "
        f"p99 {percentile(ordered, 0.99) * 1000:6.1f} ms   statuses {load.statuses}"
    )
    return rate


class Receiver:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.bad_signatures = 0
        self.last_at = 0.0
        self.expected: int | None = None
        self.all_in = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        key = base64.b64decode(SECRET.removeprefix("whsec_"))
        signed = f"{request.headers['webhook-id']}.{request.headers['webhook-timestamp']}.".encode()
        expected = base64.b64encode(hmac.new(key, signed + raw, hashlib.sha256).digest()).decode()
        if not any(
            hmac.compare_digest(p, f"v1,{expected}")
            for p in request.headers["webhook-signature"].split()
        ):
            self.bad_signatures += 1
        self.ids.append(request.headers["webhook-id"])
        self.last_at = time.perf_counter()
        if self.expected is not None and len(self.ids) >= self.expected:
            self.all_in.set()
        return web.Response(status=204)


def start_hub(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    env["OMNIHUB_CHANNELS"] = json.dumps(
        {
            "webhooks": {
                "sources": [{"key": "bench", "kind": "form", "secret": TOKEN}],
                "allow_private_targets": True,  # the receiver listens on 127.0.0.1
            }
        }
    )
    for n in range(1, 6):
        omnihub(
            env, "create-manager", "--email", f"m{n}@bench.test", "--name", f"M{n}", "--no-password"
        )
    api_token = omnihub(env, "create-token", "--name", "bench").strip().splitlines()[-1]
    port = free_port()
    with (tmp / "hub.log").open("w") as log:
        process = subprocess.Popen(
            [OMNIHUB, "run", "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=log
        )
    return process, f"http://127.0.0.1:{port}", api_token


async def run_hub(
    process: subprocess.Popen[bytes], base: str, api_token: str, seconds: float, concurrency: int
) -> tuple[Load, Receiver, float]:
    receiver = Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    receiver_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
    try:
        await wait_ready(base + "/healthz", process, 200)
        async with aiohttp.ClientSession() as session:
            subscription = {
                "url": f"http://127.0.0.1:{receiver_port}/hook",
                "events": ["deal.created"],
                "secret": SECRET,
            }
            headers = {"Authorization": f"Bearer {api_token}"}
            async with session.post(
                base + "/api/v1/webhooks/subscriptions", json=subscription, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
        load = await drive(base + HOOK, seconds, concurrency, hub=True)
        finished = time.perf_counter()
        receiver.expected = len(load.keys)
        if len(receiver.ids) >= receiver.expected:
            receiver.all_in.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(receiver.all_in.wait(), 60)
        await asyncio.sleep(1.0)  # anything beyond the expected count would be a double
        return load, receiver, max(receiver.last_at - finished, 0.0)
    finally:
        await runner.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    port = free_port()
    # -P: the bench folder is not put first on sys.path (a bench module may shadow the stdlib).
    bare = subprocess.Popen([sys.executable, "-P", str(BARE_SERVER), str(port)])
    try:
        asyncio.run(wait_ready(f"http://127.0.0.1:{port}{INBOUND}", bare, 405))
        baseline = asyncio.run(
            drive(f"http://127.0.0.1:{port}{INBOUND}", args.seconds, args.concurrency, hub=False)
        )
    finally:
        stop(bare)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        process, base, api_token = start_hub(tmp)
        try:
            load, receiver, drain = asyncio.run(
                run_hub(process, base, api_token, args.seconds, args.concurrency)
            )
        finally:
            stop(process)
        con = sqlite3.connect(tmp / "bench.sqlite3")
        try:
            deals = con.execute("SELECT count(*) FROM deals").fetchone()[0]
            messages = con.execute("SELECT count(*) FROM messages").fetchone()[0]
            logged = con.execute("SELECT count(*) FROM webhook_deliveries WHERE ok").fetchone()[0]
        finally:
            con.close()
    base_rate = report("baseline", baseline, args.seconds)
    hub_rate = report("hooks", load, args.seconds)
    print(f"hooks / baseline: {hub_rate / base_rate:.1%}")
    unique = len(load.keys)
    print(
        f"requests {load.sent}, distinct submissions {unique}, messages {messages}, deals {deals}"
    )
    print(
        f"webhooks received {len(receiver.ids)}, distinct ids {len(set(receiver.ids))}, "
        f"bad signatures {receiver.bad_signatures}, logged ok {logged}, "
        f"drained {drain:.1f} s after the load"
    )
    checks = {
        "one lead per submission": messages == unique and deals == unique,
        "one webhook per deal": len(set(receiver.ids)) == deals,
        "no doubles": len(receiver.ids) == len(set(receiver.ids)),
        "signatures verify": receiver.bad_signatures == 0,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
