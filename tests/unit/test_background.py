"""cancel_all: the tasks it stops end, and a cancel of its caller is never swallowed."""

from __future__ import annotations

import asyncio

import pytest

from hub.background import cancel_all


async def test_a_cancel_of_the_caller_while_it_waits_is_passed_on() -> None:
    started = asyncio.Event()
    waiting = asyncio.Event()

    async def child() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            waiting.set()
            await asyncio.sleep(0.2)  # a slow unwinding: the caller waits for it

    async def caller() -> None:
        task = asyncio.create_task(child())
        await started.wait()
        await cancel_all([task])
        await asyncio.Event().wait()  # reached only if the caller's cancel was swallowed

    outer = asyncio.create_task(caller())
    await waiting.wait()  # the caller is inside cancel_all, waiting for the child
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(outer, 2)


async def test_the_tasks_it_stops_end_and_it_returns() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(forever()) for _ in range(3)]
    await asyncio.sleep(0)
    await cancel_all(tasks)
    assert all(t.cancelled() for t in tasks)
