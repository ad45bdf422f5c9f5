"""The in-process bus hears events rows in the relay's order, whatever the fan-out waits for."""

from __future__ import annotations

import asyncio

from crm_core.events import EventBus
from crm_core.journal import EVENTS_TOPIC
from crm_core.outbox import OutboxItem


def _row(n: int) -> OutboxItem:
    event = {"key": f"k{n}", "payload": {"event": "message.created", "message_id": n}}
    return OutboxItem(n, EVENTS_TOPIC, f"tx{n}", {"events": [event]}, 1)


async def test_rows_are_heard_in_the_order_the_relay_started_them() -> None:
    bus = EventBus()
    queue = bus.subscribe()

    async def fan_out(item: OutboxItem) -> None:  # the earlier row waits longer
        await asyncio.sleep(0.05 if item.id == 1 else 0.0)

    handle = bus.first(fan_out)
    await asyncio.gather(*(handle(_row(n)) for n in (1, 2, 3)))
    heard = [queue.get_nowait()["message_id"] for _ in range(queue.qsize())]
    assert heard == [1, 2, 3]


async def test_a_bus_after_the_fan_out_would_reorder_them() -> None:
    """The control: the same rows handed to the bus after the wait arrive out of order."""
    bus = EventBus()
    queue = bus.subscribe()

    async def fan_out_then_bus(item: OutboxItem) -> None:
        await asyncio.sleep(0.05 if item.id == 1 else 0.0)
        await bus(item)

    await asyncio.gather(*(fan_out_then_bus(_row(n)) for n in (1, 2, 3)))
    heard = [queue.get_nowait()["message_id"] for _ in range(queue.qsize())]
    assert heard == [2, 3, 1]
