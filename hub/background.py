"""The hub's long-running loops (relay, timers, pollers, readers) and their clean stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel every task, then wait for each to finish unwinding."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except asyncio.CancelledError:
            # the task's own end; but if the caller itself is being cancelled while it
            # waits here, that cancel is the caller's: pass it on, never swallow it
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
