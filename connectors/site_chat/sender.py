"""A manager's reply to a site chat visitor.

The reply is already stored when the relay hands it here; the visitor's open sockets
hear of it from the live events (``message.created``) and read it from the store, and a
visitor who is away sees it on their next visit (or by mail, hub/site_chat/follow_up.py).
So sending is only saying that the reply is there for the widget to show.
"""

from __future__ import annotations

from crm_core.contracts import DeliveryReceipt, OutboundMessage, PermanentSendError


class SiteChatSender:
    """The :class:`ChannelSender` of the configured widgets."""

    def __init__(self, widget_keys: frozenset[str]) -> None:
        self._keys = widget_keys

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        if message.channel_account not in self._keys:
            raise PermanentSendError(f"no widget {message.channel_account!r} is configured")
        return DeliveryReceipt(external_id=f"site:{message.message_id}")
