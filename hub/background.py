"""The hub's long-running loops (relay, timers, pollers, readers) and their clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

log = logging.getLogger(__name__)


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    """Cancel every task, then wait for each to finish unwinding."""
    pending = list(tasks)
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def poll_forever(
    what: str,
    once: Callable[[], Awaitable[int]],
    seconds: float,
    on_done: Callable[[], None] = lambda: None,
) -> None:
    """Run ``once`` every ``seconds``; when it did something (a count above 0), call
    ``on_done`` (the relay's wake-up). A failed pass is logged and tried again next time."""
    while True:
        try:
            if await once():
                on_done()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: the pass failed; retrying", what)
        await asyncio.sleep(seconds)
