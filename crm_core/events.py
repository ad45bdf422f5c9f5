"""In-process fan-out of committed events (embedded mode's pub/sub).

The outbox relay hands every ``events`` row to :class:`EventBus`, which passes each
event of it on in order; subscribers (the
inbox's live updates, tests) each get a bounded queue. A subscriber that falls
behind loses its oldest events rather than slowing the relay, and reloads.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from crm_core.journal import unpacked
from crm_core.outbox import OutboxItem

log = logging.getLogger(__name__)


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
        for _key, payload in unpacked(item.payload, item.idempotency_key):
            for queue in self._subscribers:
                if queue.full():
                    queue.get_nowait()
                    log.warning("an event subscriber fell behind; dropped its oldest event")
                queue.put_nowait(payload)
