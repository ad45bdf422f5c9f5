"""The crossing between the SIP thread and the asyncio loop (pure Python, no pjsua2).

The SIP thread owns every pjsua2 object. It :meth:`Bridge.post`\\ s events, which
``loop.call_soon_threadsafe`` puts on an :class:`asyncio.Queue` read by the hub; the
hub :meth:`Bridge.submit`\\ s work, which waits in a thread-safe queue until the SIP
thread runs it in :meth:`Bridge.run_pending` and answers through an asyncio future.
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections.abc import Callable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")
E = TypeVar("E")


class BridgeClosedError(RuntimeError):
    """The SIP thread has stopped: the work was not run."""


class Bridge(Generic[E]):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._events: asyncio.Queue[E] = asyncio.Queue()
        self._work: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any]]] = (
            queue.SimpleQueue()
        )
        self._closed = False

    # The SIP thread's side.
    def post(self, event: E) -> None:
        """Hand ``event`` to the loop; dropped (and logged) once the loop is closed."""
        try:
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:
            log.warning("event %r dropped: the event loop is closed", event)

    def run_pending(self, limit: int = 64) -> int:
        """Run up to ``limit`` waiting pieces of work; answers how many ran."""
        ran = 0
        while ran < limit:
            try:
                work, future = self._work.get_nowait()
            except queue.Empty:
                break
            ran += 1
            try:
                result = work()
            except Exception as exc:  # answered to the caller, who decides
                self._answer(future, None, exc)
            else:
                self._answer(future, result, None)
        return ran

    def close(self) -> None:
        """The SIP thread stops: refuse new work and fail what still waits."""
        self._closed = True
        while True:
            try:
                _, future = self._work.get_nowait()
            except queue.Empty:
                return
            self._answer(future, None, BridgeClosedError("the SIP thread has stopped"))

    # The asyncio side.
    def submit(self, work: Callable[[], T]) -> asyncio.Future[T]:
        """Run ``work`` on the SIP thread; the future has its result or its exception."""
        future: asyncio.Future[T] = self._loop.create_future()
        if self._closed:
            future.set_exception(BridgeClosedError("the SIP thread has stopped"))
        else:
            self._work.put((work, future))
        return future

    async def next_event(self) -> E:
        return await self._events.get()

    def drain_one(self) -> E:
        """An event already delivered to the loop; ``LookupError`` when there is none."""
        try:
            return self._events.get_nowait()
        except asyncio.QueueEmpty:
            raise LookupError("no event") from None

    def _answer(self, future: asyncio.Future[Any], result: Any, error: Exception | None) -> None:
        def settle() -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        try:
            self._loop.call_soon_threadsafe(settle)
        except RuntimeError:
            log.debug("answer dropped: the event loop is closed")
