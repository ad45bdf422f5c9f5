"""Helpers the benchmarks share: processes to start and stop, ports, percentiles."""

from __future__ import annotations

import asyncio
import math
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

OMNIHUB = str(Path(sys.executable).with_name("omnihub"))


def percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def wait_ready(url: str, process: subprocess.Popen[bytes], ready_status: int) -> None:
    deadline = time.perf_counter() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.perf_counter() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited with code {process.returncode}")
            try:
                async with session.get(url) as response:
                    if response.status == ready_status:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer {ready_status} within 30 s")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def omnihub(env: dict[str, str], *args: str) -> str:
    command = [OMNIHUB, *args]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


async def load(urls: list[str], token: str | None, seconds: float, concurrency: int) -> list[float]:
    """GET ``urls`` in turn from ``concurrency`` clients for ``seconds``: the latencies,
    sorted. A status other than 200 stops the run."""
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, first: int) -> None:
        n = first
        while time.perf_counter() < deadline:
            url = urls[n % len(urls)]
            n += 1
            started = time.perf_counter()
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")
            latencies.append(time.perf_counter() - started)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as s:
        await asyncio.gather(*(worker(s, n) for n in range(concurrency)))
    return sorted(latencies)
