"""Replies by mail to visitors who left: a manager's reply that the visitor has neither
read nor come back for within ``email_after_minutes`` goes out by email from the
widget's ``email_mailbox``, in the same conversation; the client's answer to that mail
threads back into it (its In-Reply-To names the mail's Message-ID).

Each reply is mailed once, whichever worker looks: the visitor's ``emailed_up_to`` is
moved by a conditional update in the transaction that queues the mail.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from functools import partial

from aiohttp import web
from sqlalchemy.orm import Session

from connectors.site_chat.config import WidgetConfig
from crm_core import site_visitors as visitors
from crm_core.clock import Clock
from crm_core.db import Database
from crm_core.enums import Channel
from crm_core.journal import Journal
from crm_core.site_visitors import FollowUp
from hub.background import cancel_all, poll_forever
from hub.keys import CLOCK, DATABASE, RELAY
from hub.site_chat import SITE_CHAT

log = logging.getLogger(__name__)
_WORDS = {
    "en": (
        "{title}: you have a new reply in the chat.",
        "Reply to this email, or go on in the chat on the site.",
    ),
    "ru": (
        "{title}: вам ответили в чате.",
        "Ответьте на это письмо или продолжите разговор в чате на сайте.",
    ),
}


def compose(widget: WidgetConfig, follow_up: FollowUp) -> tuple[str, str]:
    """The mail's subject and text, in the visitor's language."""
    language = follow_up.language if follow_up.language in _WORDS else "en"
    if follow_up.language is None and widget.language in _WORDS:
        language = widget.language
    head, tail = _WORDS[language]
    subject = head.format(title=widget.title).rstrip(".")
    return subject, "\n\n".join((subject, *follow_up.texts, tail))


class FollowUps:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        widgets: tuple[WidgetConfig, ...],
        poll: float,
        on_queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._widgets = tuple(w for w in widgets if w.email_mailbox)
        self._poll = poll
        self._on_queued = on_queued  # the relay's wake-up

    async def run_forever(self) -> None:
        await poll_forever("site chat mail follow-up", self.run_once, self._poll, self._on_queued)

    async def run_once(self) -> int:
        """Mail what is due; returns how many mails were queued."""
        queued = 0
        for widget in self._widgets:
            queued += await self._db.write(partial(self._mail_due, widget=widget))
        return queued

    def _mail_due(self, session: Session, *, widget: WidgetConfig) -> int:
        now = self._clock.now()
        account = visitors.widget_account(session, widget.key, now)
        mailbox = visitors.account_of(session, Channel.EMAIL, widget.email_mailbox, now)
        after = timedelta(minutes=widget.email_after_minutes)
        queued = 0
        for follow_up in visitors.due_follow_ups(session, account, after, now):
            journal = Journal(f"site_chat:{widget.key}", now)
            subject, text = compose(widget, follow_up)
            if visitors.mail_follow_up(session, journal, follow_up, mailbox, text, subject):
                queued += 1
            journal.flush(session)
        return queued


async def run(app: web.Application) -> AsyncIterator[None]:
    chat = app[SITE_CHAT]
    follow_ups = FollowUps(
        app[DATABASE],
        app[CLOCK],
        chat.config.widgets,
        chat.config.follow_up_poll_seconds,
        app[RELAY].wake,
    )
    task = asyncio.create_task(follow_ups.run_forever(), name="site-chat-follow-up")
    yield
    await cancel_all([task])
