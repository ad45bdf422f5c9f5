"""In-process fan-out of committed events (embedded mode's pub/sub).

The outbox relay hands every ``events`` row to :class:`EventBus`, which passes each
event of it on in order; subscribers (the
inbox's live updates, tests) each get a bounded queue. A subscriber that falls
behind loses its oldest events rather than slowing the relay, and reloads.

With several processes (PostgreSQL), the relay hands the rows to ``hub.broadcast``
instead, and each process's listener feeds its own bus with :meth:`EventBus.deliver`;
:meth:`EventBus.reset` tells the subscribers that events may have been lost
(:data:`RESYNC`), so that they fetch what they show again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from crm_core.journal import unpacked
from crm_core.outbox import OutboxHandler, OutboxItem

log = logging.getLogger(__name__)

# Put in every queue by :meth:`EventBus.reset`; told apart by identity (``is``).
RESYNC: Mapping[str, Any] = MappingProxyType({"event": "live.resync"})


class EventBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._queue_size = queue_size
        self._subscribers: set[asyncio.Queue[Mapping[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[Mapping[str, Any]]:
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Mapping[str, Any]]) -> None:
        self._subscribers.discard(queue)

    async def __call__(self, item: OutboxItem) -> None:
        if not self._subscribers:
            return
        self.deliver(payload for _key, payload in unpacked(item.payload, item.idempotency_key))

    def first(self, inner: OutboxHandler) -> OutboxHandler:
        """The relay's handler of ``events`` rows in one process: pass the events on at
        once, then run ``inner`` (the webhooks' fan-out).

        Passed on before the first await: the relay's lanes start their rows in id
        order, so subscribers hear them in that order whatever ``inner`` waits for (a
        bus after the fan-out heard them in the order its lookups happened to finish).
        Should ``inner`` fail, the row is retried and heard again: subscribers fetch
        what changed, so a repeat costs a fetch, never a wrong view."""

        async def handle(item: OutboxItem) -> None:
            self.deliver(payload for _key, payload in unpacked(item.payload, item.idempotency_key))
            await inner(item)

        return handle

    def deliver(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        """Pass events on to every subscriber, in order, without waiting."""
        if not self._subscribers:
            return
        for payload in payloads:
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()
                    log.warning("an event subscriber fell behind; dropped its oldest event")
                queue.put_nowait(payload)

    def reset(self) -> None:
        """Events may have been lost: every subscriber gets :data:`RESYNC`."""
        self.deliver([RESYNC])


async def nothing(item: OutboxItem) -> None:
    """A relay handler with nothing left to do (the bus or the broadcast was told first)."""
