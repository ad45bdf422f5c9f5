"""Wiring of the email connector: ``[channels.email]`` → IMAP readers and the SMTP sender.

```toml
[channels.email]
media_dir = "/var/lib/omnihub/media"     # attachments, sanitized HTML, raw mail
[[channels.email.mailboxes]]
key = "sales"
address = "sales@example.com"
display_name = "Example Sales"
imap = { host = "imap.example.com", port = 993, security = "tls", user = "me", password = "…" }
smtp = { host = "smtp.example.com", port = 587, security = "starttls", user = "me", password = "…" }
poison_attempts = 5     # a mail whose handling raised this often is parked; the folder moves on
```

The readers run as tasks of the app (started and cancelled in ``cleanup_ctx``); the
sender is ``app[SENDERS][Channel.EMAIL]``, routed by channel account to its mailbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from connectors.email.config import MailboxConfig, MailboxConfigError, parse_mailboxes
from connectors.store import FileStore
from crm_core.enums import Channel
from crm_core.poisoned import PoisonedItems
from hub.background import cancel_all
from hub.files import FILES
from hub.health import HEALTH
from hub.keys import CLOCK, DATABASE, INGEST, SENDERS, SETTINGS
from hub.leases import run_leased
from hub.roles import runs_background
from hub.settings import SettingsError

if TYPE_CHECKING:
    from connectors.email.reader import MailboxReader

log = logging.getLogger(__name__)


@dataclass(slots=True)
class EmailChannel:
    mailboxes: tuple[MailboxConfig, ...]
    store: FileStore
    readers: dict[str, MailboxReader] = field(default_factory=dict)


EMAIL = web.AppKey("email", EmailChannel)


def install(app: web.Application) -> None:
    """Add the connector when ``[channels.email]`` is configured; a no-op otherwise."""
    table = app[SETTINGS].channels.get("email")
    if table is None:
        return
    if not isinstance(table, Mapping):
        raise SettingsError("channels.email: expected a table with [[channels.email.mailboxes]]")
    media_dir = table.get("media_dir", app[SETTINGS].media_dir)
    if not isinstance(media_dir, str) or not media_dir:
        raise SettingsError("channels.email.media_dir: expected a folder path")
    try:
        mailboxes = parse_mailboxes(table)
    except MailboxConfigError as exc:
        raise SettingsError(str(exc)) from exc
    app[EMAIL] = EmailChannel(mailboxes, app[FILES].add(media_dir))
    app.cleanup_ctx.append(_run)


async def _run(app: web.Application) -> AsyncIterator[None]:
    # aioimaplib and aiosmtplib: only a hub with mailboxes imports them
    from connectors.email.intake import MailIntake
    from connectors.email.reader import MailboxReader
    from connectors.email.sender import EmailSender

    channel = app[EMAIL]
    clock = app[CLOCK]
    app[SENDERS][Channel.EMAIL] = EmailSender(
        {m.key: m for m in channel.mailboxes}, channel.store, now=clock.now
    )
    tasks: list[asyncio.Task[None]] = []
    # mail that kept failing is parked (channel email, uid:<UIDVALIDITY>:<UID>) and skipped
    poisoned = PoisonedItems(app[DATABASE], clock, "email", "uid:")
    for mailbox in channel.mailboxes if runs_background(app) else ():
        intake = MailIntake(mailbox, app[INGEST], channel.store, now=clock.now)
        secrets = (mailbox.imap.password, mailbox.smtp.password)
        app[HEALTH].register("email", mailbox.key, secrets=secrets)
        reporter = app[HEALTH].reporter("email", mailbox.key)
        reader = MailboxReader(mailbox, app[INGEST], intake, on_status=reporter, ledger=poisoned)
        channel.readers[mailbox.key] = reader
        # one reader per mailbox folder among all workers (the lease names the account)
        imap = mailbox.imap
        lease = f"email:{imap.user}@{imap.host}:{imap.port}/{mailbox.folder}"
        loop = run_leased(app, lease, reader.run_forever)
        tasks.append(asyncio.create_task(loop, name=f"email-{mailbox.key}"))
        log.info("email: reading %s (%s)", mailbox.key, mailbox.imap.host)
    yield
    await cancel_all(tasks)
