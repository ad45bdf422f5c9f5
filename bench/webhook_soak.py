"""Outbound webhooks soak: a receiver that flaps while leads arrive at a steady rate.

The receiver is down a few seconds (its port closed, and a request on a connection kept
alive from before is dropped without an answer), then up a few seconds (answering 503 to
some requests), alternating, while leads arrive through the hub's API (``POST
/api/v1/inbound``) at a steady rate from a fixed set of clients, so that each client
writes several times. At the end the receiver stays up until every event the hub queued
for it has been accepted, and the soak checks that each was accepted exactly once (by
``webhook-id``) and that each client's events came in the order they happened
(``contact.created`` first, then its messages by their lead number).

Run as ``.venv/bin/python -m bench.webhook_soak [--seconds 120] [--rate 10]``. Bounded:
the load lasts ``--seconds`` and the drain at most ``--drain`` seconds more.
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
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.processes import OMNIHUB, free_port, omnihub, percentile, stop, wait_ready

INBOUND = "/api/v1/inbound"
SECRET = "whsec_" + base64.b64encode(b"bench-webhook-soak-secret-32byte").decode()
EVENTS = ["contact.created", "message.created", "deal.created"]
LEAD = re.compile(r"soak lead #(\d+)")


@dataclass
class Accepted:
    """An event the receiver answered 2xx, the first time it came."""

    event: str
    contact_id: int | None
    lead: int | None
    delay: float  # seconds from the event (its ``timestamp``) to its acceptance


@dataclass
class Receiver:
    """Flaps: ``up`` says whether it takes requests now."""

    runner: web.AppRunner
    port: int
    error_share: float
    rng: random.Random = field(default_factory=lambda: random.Random(20261201))
    up: bool = True
    site: web.TCPSite | None = None
    accepted: dict[str, Accepted] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # webhook-ids as accepted
    duplicates: int = 0
    refused_503: int = 0
    dropped: int = 0
    bad_signatures: int = 0
    outages: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if not self.up:
            # down: a connection kept alive from before gets no answer
            if request.transport is not None:
                request.transport.close()
            self.dropped += 1
            return web.Response(status=503)
        if self.rng.random() < self.error_share:
            self.refused_503 += 1
            return web.Response(status=503)
        webhook_id = request.headers["webhook-id"]
        if not _signed(request.headers, raw):
            self.bad_signatures += 1
        if webhook_id in self.accepted:
            self.duplicates += 1
            return web.Response(status=204)
        body = json.loads(raw)
        data = body.get("data", {})
        message = data.get("message") or {}
        match = LEAD.search(str(message.get("text") or ""))
        sent_at = datetime.fromisoformat(body["timestamp"]).timestamp()
        self.accepted[webhook_id] = Accepted(
            str(body.get("type")),
            data.get("contact_id"),
            int(match.group(1)) if match else None,
            max(time.time() - sent_at, 0.0),
        )
        self.order.append(webhook_id)
        return web.Response(status=204)

    async def start(self) -> None:
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()
        self.up = True

    async def go_down(self) -> None:
        self.up = False
        self.outages += 1
        if self.site is not None:
            await self.site.stop()
            self.site = None

    async def flap(self, until: float, down: tuple[float, float], up: tuple[float, float]) -> None:
        while time.perf_counter() < until:
            await asyncio.sleep(self.rng.uniform(*up))
            if time.perf_counter() >= until:
                break
            await self.go_down()
            await asyncio.sleep(self.rng.uniform(*down))
            await self.start()


def _signed(headers: Any, raw: bytes) -> bool:
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + raw
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(p, expected) for p in headers["webhook-signature"].split())


@dataclass
class Load:
    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


async def drive(base: str, token: str, seconds: float, rate: float, clients: int) -> Load:
    """``rate`` leads a second, steady, from ``clients`` phones in turn."""
    load = Load()
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        client = n % clients
        body = {
            "channel": "api",
            "channel_account": "website",
            "external_id": f"soak-{n}",
            "sender": {
                "name": f"Soak Client {client}",
                "identities": [{"kind": "phone", "value": f"+7916{client:07d}"}],
            },
            "text": f"soak lead #{n}",
        }
        async with session.post(base + INBOUND, json=body, headers=headers) as response:
            await response.read()
            load.statuses[response.status] += 1

    async with aiohttp.ClientSession() as session:
        n = 0
        while (now := time.perf_counter()) - started < seconds:
            due = started + n / rate
            if due > now:
                await asyncio.sleep(due - now)
            # one client's leads go one after another: its order is the order they happened
            task = asyncio.create_task(one(session, n))
            pending.add(task)
            task.add_done_callback(pending.discard)
            load.sent += 1
            n += 1
            if n % clients == 0:
                await asyncio.gather(*pending)  # a round of every client is in
        await asyncio.gather(*pending)
    return load


def start_hub(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite:///{tmp / 'soak.sqlite3'}"
    env["OMNIHUB_CHANNELS"] = json.dumps(
        {"webhooks": {"sources": [], "allow_private_targets": True}}
    )
    for n in range(1, 4):
        omnihub(
            env, "create-manager", "--email", f"m{n}@soak.test", "--name", f"M{n}", "--no-password"
        )
    token = omnihub(env, "create-token", "--name", "soak").strip().splitlines()[-1]
    port = free_port()
    with (tmp / "hub.log").open("w") as log:
        process = subprocess.Popen(
            [OMNIHUB, "run", "--port", str(port)], env=env, cwd=tmp, stdout=log, stderr=log
        )
    return process, f"http://127.0.0.1:{port}", token


def queued(path: Path) -> set[str]:
    """The webhook-ids the hub queued for the receiver (one per event it wants)."""
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT payload FROM outbox WHERE topic = 'webhook.deliver'")
        return {_webhook_id(json.loads(p)) for (p,) in rows}
    finally:
        con.close()


def _webhook_id(payload: dict[str, Any]) -> str:
    return str(payload["webhook_id"])


def out_of_order(receiver: Receiver) -> int:
    """Events accepted before an earlier one of the same client."""
    wrong = 0
    seen_contact: set[int] = set()
    last_lead: dict[int, int] = {}
    for webhook_id in receiver.order:
        item = receiver.accepted[webhook_id]
        if item.contact_id is None:
            continue
        if item.event == "contact.created":
            seen_contact.add(item.contact_id)
            continue
        if item.contact_id not in seen_contact:
            wrong += 1  # before its contact.created
        if item.lead is not None and item.event == "message.created":
            if item.lead < last_lead.get(item.contact_id, -1):
                wrong += 1
            last_lead[item.contact_id] = max(item.lead, last_lead.get(item.contact_id, -1))
    return wrong


async def soak(args: argparse.Namespace, tmp: Path) -> int:
    process, base, token = start_hub(tmp)
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    receiver = Receiver(runner, free_port(), args.errors)
    app.router.add_post("/hook", receiver.handle)
    await runner.setup()
    await receiver.start()
    try:
        await wait_ready(base + "/healthz", process, 200)
        async with aiohttp.ClientSession() as session:
            subscription = {
                "url": f"http://127.0.0.1:{receiver.port}/hook",
                "events": EVENTS,
                "secret": SECRET,
            }
            headers = {"Authorization": f"Bearer {token}"}
            async with session.post(
                base + "/api/v1/webhooks/subscriptions", json=subscription, headers=headers
            ) as response:
                assert response.status == 201, await response.text()
        started = time.perf_counter()
        until = started + args.seconds
        flapping = asyncio.create_task(receiver.flap(until, (2.0, 5.0), (2.0, 5.0)))
        load = await drive(base, token, args.seconds, args.rate, args.clients)
        await flapping
        if receiver.site is None:
            await receiver.start()
        load_done = time.perf_counter()
        expected: set[str] = set()
        drain_deadline = load_done + args.drain
        while time.perf_counter() < drain_deadline:
            expected = queued(tmp / "soak.sqlite3")
            if expected and expected <= receiver.accepted.keys():
                break
            await asyncio.sleep(0.5)
        drained = time.perf_counter() - load_done
        await asyncio.sleep(2.0)  # anything arriving now would be a double
    finally:
        with contextlib.suppress(Exception):
            await runner.cleanup()
        stop(process)
    delays = sorted(a.delay for a in receiver.accepted.values())
    missing = len(expected - receiver.accepted.keys())
    unknown = len(receiver.accepted.keys() - expected)
    wrong = out_of_order(receiver)
    kinds = Counter(a.event for a in receiver.accepted.values())
    print(
        f"soak {args.seconds:.0f} s at {args.rate:g} leads/s from {args.clients} clients: "
        f"leads sent {load.sent}, statuses {dict(load.statuses)}"
    )
    print(
        f"receiver: {receiver.outages} outages, {receiver.dropped} requests dropped while "
        f"down, {receiver.refused_503} answered 503"
    )
    print(
        f"events sent {len(expected)}, delivered {len(receiver.accepted)} "
        f"({dict(kinds)}), missing {missing}, unknown {unknown}, "
        f"duplicates {receiver.duplicates}, out-of-order {wrong}, "
        f"bad signatures {receiver.bad_signatures}"
    )
    print(
        f"delay: p50 {percentile(delays, 0.5):.1f} s, p99 {percentile(delays, 0.99):.1f} s, "
        f"max {delays[-1] if delays else float('nan'):.1f} s; drained {drained:.1f} s "
        "after the load"
    )
    checks = {
        "every lead answered 201": load.statuses.get(201, 0) == load.sent,
        "every event delivered": missing == 0 and len(expected) > 0,
        "exactly once": receiver.duplicates == 0 and unknown == 0,
        "in order per contact": wrong == 0,
        "signatures verify": receiver.bad_signatures == 0,
    }
    for name, ok in checks.items():
        print(f"{'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120.0, help="how long leads arrive")
    parser.add_argument("--rate", type=float, default=10.0, help="leads a second")
    parser.add_argument("--clients", type=int, default=100, help="distinct clients, in turn")
    parser.add_argument("--errors", type=float, default=0.1, help="share of 503s while up")
    parser.add_argument("--drain", type=float, default=150.0, help="longest wait at the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        return asyncio.run(soak(args, Path(folder)))


if __name__ == "__main__":
    sys.exit(main())
