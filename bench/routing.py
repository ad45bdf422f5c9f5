"""Routing benchmark: decisions per second for 100 rules and 200 managers.

Run as ``.venv/bin/python -m bench.routing [--seconds 3]``. The baseline, measured in
the same run on the same candidates, is the plain round robin (``routing.decide``).
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from routing import Candidate, RoutingRequest, decide
from routing.config import load_config
from routing.engine import route
from routing.rules import RoutingEvent

CAMPAIGNS = [f"campaign_{n}" for n in range(100)]


def config(managers: int, rules: int) -> dict[str, Any]:
    teams = {
        f"team{t}": {
            "members": list(range(t * 20 + 1, t * 20 + 21)),
            "mode": ["evenly", "strictly", "to_all"][t % 3],
            "hours": {
                "timezone": "Europe/Moscow",
                "weekly": {d: ["09:00-18:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            },
        }
        for t in range(managers // 20)
    }
    rule_list: list[dict[str, Any]] = [
        {
            "name": f"rule {n}",
            "team": f"team{n % len(teams)}",
            "when": {
                "channels": ["telegram", "form"],
                "fields": [{"field": "utm_campaign", "match": "prefix", "value": CAMPAIGNS[n]}],
                "keywords": ["кластер", "postgres"] if n % 2 else [],
            },
        }
        for n in range(rules - 1)
    ]
    rule_list.append({"name": "default", "team": "team0"})
    return {"teams": teams, "rules": rule_list}


def measure(seconds: float, step: Callable[[int], object]) -> float:
    done = 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(100):
            step(done)
            done += 1
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    rng = random.Random(7)
    loaded = load_config(config(200, 100))
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    candidates = [
        Candidate(
            m,
            None,
            rng.random() > 0.1,
            rng.randint(0, 20),
            20,
            start - timedelta(seconds=rng.randint(0, 3600)),
        )
        for m in range(1, 201)
    ]
    events = [
        RoutingEvent(
            channel=rng.choice(["telegram", "form", "email"]),
            channel_account="main",
            occurred_at=start + timedelta(minutes=rng.randint(0, 60 * 24 * 7)),
            text=rng.choice(["Сколько стоит кластер?", "hello", "postgres 16 price"]),
            utm_campaign=rng.choice([*CAMPAIGNS, None]),
        )
        for _ in range(1000)
    ]
    requests = [RoutingRequest(e.channel, e.channel_account, e.occurred_at) for e in events]
    baseline = measure(args.seconds, lambda n: decide(requests[n % 1000], candidates))
    engine = measure(args.seconds, lambda n: route(events[n % 1000], candidates, loaded))
    print("rules: 100, managers: 200, teams: 10")
    print(f"baseline (round robin only): {baseline:12,.0f} decisions/s")
    print(f"routing engine:              {engine:12,.0f} decisions/s")
    print(f"engine/baseline: {engine / baseline:.3f}")


if __name__ == "__main__":
    main()
