"""Inbox benchmark: how fast the managers' views answer with many clients in the hub.

Seeds ``--clients`` conversations through the API (each a contact, a deal and a task),
then loads each inbox endpoint in turn and prints requests/s and latency next to the
hub's own ``/healthz`` (one ``SELECT 1`` through the same stack), measured in the same run.

Run as ``.venv/bin/python -m bench.inbox [--clients 20000] [--seconds 5]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.processes import OMNIHUB, free_port, load, omnihub, percentile, stop, wait_ready

MANAGERS = 5


def _setup(tmp: Path) -> tuple[dict[str, str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite:///{tmp / 'bench.sqlite3'}"
    people = [(f"m{n}@bench.test", "manager") for n in range(1, MANAGERS + 1)]
    for email, role in [*people, ("head@bench.test", "head")]:
        team = ["--team", "Sales"] if role == "manager" else []
        omnihub(env, "create-manager", "--email", email, "--name", email, "--role", role,
                *team, "--no-password")  # fmt: skip
    tokens = {
        "integration": omnihub(env, "create-token", "--name", "seed"),
        "head": omnihub(env, "create-token", "--name", "h", "--manager-email", "head@bench.test"),
        "manager": omnihub(env, "create-token", "--name", "m", "--manager-email", "m1@bench.test"),
    }
    return env, {k: v.strip().splitlines()[-1] for k, v in tokens.items()}


async def _seed(base: str, token: str, clients: int, concurrency: int) -> float:
    numbers = iter(range(clients))
    headers = {"Authorization": f"Bearer {token}"}

    async def worker(session: aiohttp.ClientSession) -> None:
        for n in numbers:
            body = {
                "channel": "telegram" if n % 2 else "api",
                "channel_account": "bot" if n % 2 else "site",
                "external_id": f"seed-{n}",
                "sender": {
                    "name": f"Client {n}",
                    "identities": [{"kind": "phone", "value": f"+7915{n:07d}"}],
                },
                "text": f"Question number {n} about a PostgreSQL cluster",
            }
            async with session.post(f"{base}/api/v1/inbound", json=body, headers=headers) as r:
                if r.status != 201:
                    raise RuntimeError(f"seeding answered {r.status}: {await r.text()}")

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s) for _ in range(concurrency)))
    return clients / (time.perf_counter() - started)


async def _contact_of(base: str, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/api/v1/inbox?view=mine&limit=1"
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
        return int((await r.json())["items"][0]["contact_id"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=20_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        env, tokens = _setup(tmp)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        with (tmp / "hub.log").open("w") as log:
            hub = subprocess.Popen([OMNIHUB, "run", "--port", str(port)], env=env, cwd=tmp,
                                   stdout=log, stderr=log)  # fmt: skip
        try:
            asyncio.run(wait_ready(f"{base}/healthz", hub, 200))
            rate = asyncio.run(_seed(base, tokens["integration"], args.clients, 32))
            print(f"seeded {args.clients} clients through the API at {rate:.0f}/s")
            contact = asyncio.run(_contact_of(base, tokens["manager"]))
            cases = [
                ("healthz (baseline)", "/healthz", None),
                ("inbox, head, all", "/api/v1/inbox?view=all", "head"),
                ("inbox, manager, mine", "/api/v1/inbox?view=mine", "manager"),
                ("inbox, manager, all", "/api/v1/inbox?view=all", "manager"),
                ("contact timeline", f"/api/v1/contacts/{contact}/timeline", "manager"),
                ("funnel board, head", "/api/v1/funnels/consultation/board", "head"),
            ]
            baseline = 0.0
            for label, path, who in cases:
                token = tokens[who] if who else None
                ordered = asyncio.run(load([base + path], token, args.seconds, args.concurrency))
                per_second = len(ordered) / args.seconds
                baseline = baseline or per_second
                ratio = per_second / baseline
                print(
                    f"{label:<22} {per_second:7.0f} req/s  ({ratio:5.2f} x baseline)"
                    f"  p50 {percentile(ordered, 0.5) * 1000:7.1f} ms"
                    f"  p99 {percentile(ordered, 0.99) * 1000:7.1f} ms"
                )
        finally:
            stop(hub)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
