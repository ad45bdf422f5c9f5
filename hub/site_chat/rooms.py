"""Visitors' sockets by conversation: one subscriber of the live events for all of them.

Each event of a conversation (a reply, a manager typing or reading) goes to the sockets
joined to that conversation only, so a hub holding thousands of idle visitors does one
lookup per event, not one queue per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from crm_core.events import RESYNC, EventBus

log = logging.getLogger(__name__)
Inbox = asyncio.Queue[Mapping[str, Any]]
QUEUE_SIZE = 200


OPENED = "site_chat.opened"  # (this process only) a visitor's first message opened a chat


class Rooms:
    def __init__(self) -> None:
        self._rooms: dict[int, set[Inbox]] = {}
        self._waiting: dict[int, set[Inbox]] = {}  # by visitor: tabs open before any chat

    def wait(self, visitor_id: int, inbox: Inbox) -> None:
        self._waiting.setdefault(visitor_id, set()).add(inbox)

    def stop_waiting(self, visitor_id: int, inbox: Inbox) -> None:
        waiting = self._waiting.get(visitor_id)
        if waiting is not None:
            waiting.discard(inbox)
            if not waiting:
                del self._waiting[visitor_id]

    def opened(self, visitor_id: int, conversation_id: int) -> None:
        """The visitor's other tabs join the chat their first message opened."""
        for inbox in self._waiting.pop(visitor_id, ()):
            inbox.put_nowait({"event": OPENED, "conversation_id": conversation_id})

    def join(self, conversation_id: int, inbox: Inbox) -> None:
        self._rooms.setdefault(conversation_id, set()).add(inbox)

    def leave(self, conversation_id: int, inbox: Inbox) -> None:
        members = self._rooms.get(conversation_id)
        if members is not None:
            members.discard(inbox)
            if not members:
                del self._rooms[conversation_id]

    def __len__(self) -> int:
        return sum(len(members) for members in self._rooms.values())

    async def run(self, bus: EventBus) -> None:
        queue = bus.subscribe()
        try:
            while True:
                self.pass_on(await queue.get())
        finally:
            bus.unsubscribe(queue)

    def pass_on(self, event: Mapping[str, Any]) -> None:
        if event is RESYNC:  # events were lost: every visitor reconnects and reloads
            targets = [inbox for members in self._rooms.values() for inbox in members]
        else:
            conversation_id = event.get("conversation_id")
            if not isinstance(conversation_id, int):
                return
            targets = list(self._rooms.get(conversation_id, ()))
        for inbox in targets:
            if inbox.full():  # a socket that stopped reading: it will be closed
                log.warning("site chat: a visitor socket fell behind; dropping an event")
                continue
            inbox.put_nowait(event)
