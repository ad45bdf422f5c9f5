"""Wiring of the site chat: ``[channels.site_chat]`` → the widget's pages, its socket,
its sender and the mail to visitors who did not come back (docs/site-chat.md).

```toml
[channels.site_chat]
[[channels.site_chat.widgets]]
key = "cloud-site"
allowed_origins = ["https://cloud.example.com"]
```
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from weakref import WeakValueDictionary

from aiohttp import web

from connectors.site_chat.config import SiteChatConfig, WidgetConfigError, parse_site_chat
from connectors.site_chat.limits import Brake, OpenCount, RateWindow
from connectors.site_chat.sender import SiteChatSender
from connectors.store import FileStore
from crm_core.enums import Channel
from hub.api.errors import OWN_BODY_LIMITS
from hub.background import cancel_all
from hub.email import EMAIL
from hub.files import FILES
from hub.keys import EVENTS, SENDERS, SETTINGS
from hub.roles import ROLE
from hub.settings import SettingsError
from hub.site_chat.poisoned import FailedMessages
from hub.site_chat.rooms import Rooms

log = logging.getLogger(__name__)


@dataclass(slots=True)
class SiteChat:
    config: SiteChatConfig
    store: FileStore
    rooms: Rooms
    sessions_by_address: Brake = field(default_factory=RateWindow)
    messages_by_visitor: Brake = field(default_factory=RateWindow)
    uploads_by_visitor: Brake = field(default_factory=RateWindow)
    typing_by_visitor: RateWindow = field(default_factory=RateWindow)  # a light brake, local
    sockets_by_address: OpenCount = field(default_factory=OpenCount)
    sockets_by_visitor: OpenCount = field(default_factory=OpenCount)
    # the messages ingest failed on here, counted until they are parked (poisoned.py)
    failed: FailedMessages = field(default_factory=FailedMessages)
    # one message of a visitor at a time in this process (their first opens the chat)
    visitor_locks: WeakValueDictionary[int, asyncio.Lock] = field(
        default_factory=WeakValueDictionary
    )

    @property
    def sockets_per_address(self) -> int:
        return max((w.limits.sockets_per_address for w in self.config.widgets), default=0)

    def lock_of(self, visitor_id: int) -> asyncio.Lock:
        lock = self.visitor_locks.get(visitor_id)
        if lock is None:
            lock = self.visitor_locks[visitor_id] = asyncio.Lock()
        return lock


SITE_CHAT = web.AppKey("site_chat", SiteChat)


def install(app: web.Application) -> None:
    """Add the site chat when ``[channels.site_chat]`` is configured; a no-op otherwise."""
    table = app[SETTINGS].channels.get("site_chat")
    if table is None:
        return
    try:
        config = parse_site_chat(table)
    except WidgetConfigError as exc:
        raise SettingsError(str(exc)) from exc
    media_dir = table.get("media_dir", app[SETTINGS].media_dir)
    if not isinstance(media_dir, str) or not media_dir:
        raise SettingsError("channels.site_chat.media_dir: expected a folder path")
    app[SITE_CHAT] = SiteChat(config, app[FILES].add(media_dir), Rooms())
    if app[SETTINGS].redis_url:  # several web processes: the minute counts add up in Redis
        from hub.site_chat import brakes

        brakes.install(app)
    mailboxes = {m.key for m in app[EMAIL].mailboxes} if EMAIL in app else set()
    for widget in config.widgets:
        if widget.email_mailbox and widget.email_mailbox not in mailboxes:
            raise SettingsError(
                f"channels.site_chat: widget {widget.key}: email_mailbox "
                f"{widget.email_mailbox!r} is not a mailbox of [channels.email]"
            )
    keys = frozenset(w.key for w in config.widgets)
    app[SENDERS].setdefault(Channel.SITE_CHAT, SiteChatSender(keys))
    role = app[ROLE]
    if role.serves_api:
        from hub.site_chat import pages, socket

        app.router.add_routes(pages.routes)
        app.router.add_routes(socket.routes)
        largest = max((w.limits.max_file_bytes for w in config.widgets), default=0)
        app.setdefault(OWN_BODY_LIMITS, {})["/widget/v1/files"] = largest
        app.cleanup_ctx.append(_rooms)
    if role.runs_background:
        from hub.site_chat import follow_up

        app.cleanup_ctx.append(follow_up.run)
    for widget in config.widgets:
        log.info("site chat: widget %s for %s", widget.key, ", ".join(widget.allowed_origins))


async def _rooms(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(app[SITE_CHAT].rooms.run(app[EVENTS]), name="site-chat-rooms")
    yield
    await cancel_all([task])
