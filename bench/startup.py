"""How fast the ``omnihub`` command starts (issue 18: "The command line starts fast").

Run as ``.venv/bin/python -m bench.startup [--runs 5]``. Over ``--runs`` runs it measures the
wall time of ``omnihub --help`` and of each command's ``--help`` against a baseline measured
in the same run: ``python -c pass`` with the same interpreter (machines are noisy: both are
printed, and the difference, which is what the command itself costs). Then it spawns
``omnihub run`` on an empty configuration (a temporary SQLite file, a free port) and measures
the time until ``GET /healthz`` answers 200, printing p50 and max. It prints figures and
asserts nothing about them.

Findings (this 2-core machine, shared with other test runs, load average about 3; the
``python -c pass`` baseline 50-90 ms; the old code measured from ``git archive HEAD``
interleaved with the new one, 5 runs each):

- Before: ``omnihub --help`` and every command's ``--help`` took 3.6-5.5 s (p50), nearly all
  of it imports done before argparse looked at ``--help``: ``hub.cli`` imported ``hub.app``
  (every route, every channel's wiring), the ORM and alembic at module level. On the way it
  hashed a password: ``crm_core.logins`` made its dummy argon2 hash (the one an unknown
  email is checked against) at import, 0.15-0.35 s of CPU. openpyxl (the reports' XLSX
  export, ~0.1 s), aioimaplib/aiosmtplib (mailboxes) and asyncpg (PostgreSQL's
  LISTEN/NOTIFY) came in with every hub. aiogram (seconds by itself) was already imported
  only with ``[channels.telegram]``. ``omnihub run`` on an empty configuration answered
  ``/healthz`` 200 after p50 3.3-3.5 s, max 3.5-3.9 s.
- After: ``hub.cli`` imports argparse, the settings and the ``Role`` enum; each command
  imports what it runs (before logging is configured, as before: alembic logs as it
  loads). Every ``--help`` takes p50 150-165 ms, about 100 ms over the baseline. The dummy
  hash is made on the first password check; openpyxl by the XLSX export; the email
  libraries by a hub with mailboxes; asyncpg by a hub on PostgreSQL.
  ``omnihub run`` -> ``/healthz`` 200: p50 2.6-2.8 s, max 2.9-3.5 s. What is left is
  what a running hub uses: SQLAlchemy (0.4-0.6 s), aiohttp (~0.3 s), the ORM's models
  (~0.3 s), pydantic and the API's schemas (~0.3 s), alembic for ``migrate_on_start``
  (0.1-0.2 s), the routing package's frozen dataclasses (0.1-0.2 s) and
  prometheus_client (~0.1 s, it imports ``http.server``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.processes import OMNIHUB, free_port, percentile, stop, wait_ready

COMMANDS = ["run", "web", "worker", "migrate", "create-manager", "create-token"]


def _wall(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def _empty_env(folder: Path) -> dict[str, str]:
    """The environment, without any ``OMNIHUB_*`` setting but the database: an empty config."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIHUB_")}
    env["OMNIHUB_DATABASE_URL"] = f"sqlite:///{folder / 'hub.sqlite3'}"
    env["OMNIHUB_MEDIA_DIR"] = str(folder / "media")
    return env


def _line(name: str, times: list[float], baseline: float) -> str:
    median = statistics.median(times)
    return (
        f"{name:<32} p50 {median * 1000:7.0f} ms  max {max(times) * 1000:7.0f} ms  "
        f"over baseline {(median - baseline) * 1000:+7.0f} ms"
    )


def _time_to_healthy(env: dict[str, str], folder: Path) -> float:
    port = free_port()
    log = folder / "run.log"
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            [OMNIHUB, "run", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=output,
            stderr=output,
        )
        try:
            asyncio.run(wait_ready(f"http://127.0.0.1:{port}/healthz", process, 200))
            return time.perf_counter() - started
        except RuntimeError as exc:
            tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise RuntimeError(f"{exc}; its output ends with:\n{tail}") from exc
        finally:
            stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (5)")
    args = parser.parse_args()
    runs: int = args.runs

    with tempfile.TemporaryDirectory(prefix="omnihub-startup-") as tmp:
        folder = Path(tmp)
        env = _empty_env(folder)
        helps: list[tuple[str, list[str]]] = [("omnihub --help", [OMNIHUB, "--help"])]
        helps += [(f"omnihub {c} --help", [OMNIHUB, c, "--help"]) for c in COMMANDS]
        baseline_times: list[float] = []
        help_times: dict[str, list[float]] = {name: [] for name, _ in helps}
        for _ in range(runs):  # interleaved: a noisy moment hits baseline and commands alike
            baseline_times.append(_wall([sys.executable, "-c", "pass"], env))
            for name, command in helps:
                help_times[name].append(_wall(command, env))
        baseline = statistics.median(baseline_times)
        print(f"runs: {runs}; interpreter: {sys.executable}")
        print(_line("python -c pass (baseline)", baseline_times, baseline))
        for name, _ in helps:
            print(_line(name, help_times[name], baseline))

        _wall([OMNIHUB, "migrate"], env)  # the first run's migration is not startup
        healthy = [_time_to_healthy(env, folder) for _ in range(runs)]
        ordered = sorted(healthy)
        print(
            f"{'omnihub run -> /healthz 200':<32} p50 {percentile(ordered, 0.5) * 1000:7.0f} ms"
            f"  max {ordered[-1] * 1000:7.0f} ms  (empty config, SQLite)"
        )


if __name__ == "__main__":
    main()
