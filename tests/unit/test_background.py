"""cancel_all: the tasks it stops end, and it returns."""

from __future__ import annotations

import asyncio

from hub.background import cancel_all


async def test_the_tasks_it_stops_end_and_it_returns() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(forever()) for _ in range(3)]
    await asyncio.sleep(0)
    await cancel_all(tasks)
    assert all(t.cancelled() for t in tasks)
