"""A visitor's message that ingest fails on again and again is parked, not resent forever.

A fault of ours while storing a message closes the visitor's socket (1011); the widget
reconnects and sends the message again, as it should for a fault that heals. One that
does not heal would loop for as long as the page stays open. This process counts each
message's failures (by its client id); at :data:`POISON_ATTEMPTS` it parks the message
(channel ``site_chat``, key ``say:<widget>:<client id>``, with the visitor and the text:
``GET /api/v1/parked`` lists it for an admin) and answers the widget with an ``error``
frame, code ``parked``: the widget marks the message as not sent and stops. When a
message that failed goes through later (the visitor's "send again"), it is no longer
parked.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from connectors.site_chat.protocol import Say
from crm_core.poisoned import PoisonedItems
from crm_core.site_visitors import Visitor

log = logging.getLogger(__name__)

POISON_ATTEMPTS = 3
REMEMBERED = 10_000  # messages whose failures are counted at once (the oldest forgotten)
PREFIX = "say:"


class FailedMessages:
    """How often each message failed here (bounded), and parking it when it keeps failing."""

    def __init__(self) -> None:
        self._failures: OrderedDict[str, int] = OrderedDict()

    @staticmethod
    def key(widget: str, say: Say) -> str:
        return f"{PREFIX}{widget}:{say.client_id}"

    async def failed(
        self, items: PoisonedItems, widget: str, visitor: Visitor, say: Say, error: Exception
    ) -> bool:
        """Count a failure; True when the message is parked now (answer, do not retry)."""
        key = self.key(widget, say)
        count = self._failures.pop(key, 0) + 1
        self._failures[key] = count
        while len(self._failures) > REMEMBERED:
            self._failures.popitem(last=False)
        if count < POISON_ATTEMPTS:
            return False
        reason = f"{type(error).__name__}: {error}"[:500]
        detail = {"visitor_id": str(visitor.id), "text": say.text[:2000]}
        await items.park(widget, key, reason, count, detail)
        log.error("site chat: parked message %s after %d failures: %s", key, count, reason)
        return True

    async def went_through(self, items: PoisonedItems, widget: str, say: Say) -> None:
        """A message that failed here before is stored now: no longer parked."""
        key = self.key(widget, say)
        if self._failures.pop(key, None) is not None:
            await items.taken(widget, key)
