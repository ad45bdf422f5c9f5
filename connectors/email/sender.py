"""Replies out by SMTP (aiosmtplib), threaded for the client's mail program, kept in Sent.

The Message-ID is derived from the hub's message id, so a retried send is the same mail
to the client's program. A temporary SMTP answer (4xx, a broken line) raises
:class:`SendError` and the outbox retries with backoff; a permanent one (5xx) raises
:class:`PermanentSendError` (a refused single recipient: :class:`RecipientUnreachableError`)
and the manager sees the message failed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from typing import Any

import aiosmtplib

from connectors.email import imap
from connectors.email.config import MailboxConfig
from connectors.email.parser import parse
from connectors.email.threads import conversation_token, message_ids, reply_subject
from connectors.store import BlobStore
from crm_core.contracts import (
    DeliveryReceipt,
    IdentityRef,
    OutboundMessage,
    PermanentSendError,
    RecipientUnreachableError,
    SendError,
)
from crm_core.enums import IdentityKind

log = logging.getLogger(__name__)

_MAX_REFERENCES = 20


class EmailSender:
    """The :class:`ChannelSender` of one or more mailboxes (by channel account)."""

    def __init__(
        self,
        mailboxes: dict[str, MailboxConfig],
        store: BlobStore,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        timeout: float = 60.0,
    ) -> None:
        self.mailboxes = mailboxes
        self.store = store
        self.now = now
        self.timeout = timeout

    async def send(self, message: OutboundMessage) -> DeliveryReceipt:
        mailbox = self.mailboxes.get(message.channel_account)
        if mailbox is None:
            raise PermanentSendError(f"no mailbox {message.channel_account!r} is configured")
        recipients = [r.value for r in message.recipients if r.kind == IdentityKind.EMAIL]
        if not recipients:
            raise PermanentSendError("the contact has no email address")
        original = await self._original(mailbox, message.in_reply_to)
        mail, message_id = await self.compose(mailbox, message, recipients, original)
        await self._deliver(mailbox, mail, recipients)
        await self._keep_in_sent(mailbox, mail)
        return DeliveryReceipt(external_id=message_id)

    async def compose(
        self,
        mailbox: MailboxConfig,
        message: OutboundMessage,
        recipients: list[str],
        original: EmailMessage | None = None,
    ) -> tuple[EmailMessage, str]:
        domain = mailbox.address.rsplit("@", 1)[1]
        message_id = f"omnihub.{message.conversation_id}.{message.message_id}@{domain}"
        mail = EmailMessage(policy=SMTP_POLICY)
        mail["From"] = formataddr((mailbox.display_name or "", mailbox.address))
        mail["To"] = ", ".join(recipients)
        mail["Date"] = format_datetime(self.now())
        mail["Message-ID"] = f"<{message_id}>"
        if original is None and message.subject:  # a first mail of ours (site chat's)
            token = conversation_token(message.conversation_id)
            mail["Subject"] = f"{message.subject} {token}"
        else:
            subject = str(original.get("Subject", "")) if original is not None else ""
            mail["Subject"] = reply_subject(subject, message.conversation_id)
        if message.in_reply_to and "@" in message.in_reply_to:
            earlier = message_ids(str(original.get("References", ""))) if original else []
            refs = [*earlier, message.in_reply_to][-_MAX_REFERENCES:]
            mail["In-Reply-To"] = f"<{message.in_reply_to}>"
            mail["References"] = " ".join(f"<{r}>" for r in refs)
        mail["Auto-Submitted"] = "no"
        mail.set_content(message.text)
        for attachment in message.attachments:
            if attachment.storage_key is None:
                raise PermanentSendError(f"attachment {attachment.name!r} has no stored file")
            try:
                data = await self.store.get(attachment.storage_key)
            except KeyError as exc:
                raise PermanentSendError(f"attachment {attachment.name!r} is missing") from exc
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(
                data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.name,
            )
        return mail, message_id

    async def _deliver(self, mailbox: MailboxConfig, mail: EmailMessage, to: list[str]) -> None:
        await deliver(mailbox, mail, to, self.timeout)

    async def _original(
        self, mailbox: MailboxConfig, message_id: str | None
    ) -> EmailMessage | None:
        """The client's mail we answer (its Subject and References), found in the folder."""
        if not message_id or "@" not in message_id or '"' in message_id:
            return None
        try:
            async with imap.session(mailbox.imap, wait=self.timeout) as client:
                await imap.select(client, mailbox.folder)
                found = await _search_header(client, "Message-ID", f"<{message_id}>")
                if not found:
                    return None
                raw = (await imap.fetch(client, found[-1:])).get(found[-1])
        except (imap.ImapError, OSError, TimeoutError) as exc:
            log.warning("mailbox %s: original mail not looked up: %s", mailbox.key, exc)
            return None
        if raw is None:
            return None
        parsed = parse(raw)
        mail = EmailMessage()
        mail["Subject"] = parsed.subject
        mail["References"] = " ".join(f"<{r}>" for r in reversed(parsed.thread_refs))
        return mail

    async def _keep_in_sent(self, mailbox: MailboxConfig, mail: EmailMessage) -> None:
        """A copy in the Sent folder; the mail is already gone, so a failure is only logged."""
        if mailbox.sent_folder is None:
            return
        try:
            async with imap.session(mailbox.imap, wait=self.timeout) as client:
                try:
                    await imap.append(client, mail.as_bytes(), mailbox.sent_folder, "(\\Seen)")
                except imap.ImapError as exc:
                    if "TRYCREATE" not in str(exc):
                        raise
                    await imap.create(client, mailbox.sent_folder)
                    await imap.append(client, mail.as_bytes(), mailbox.sent_folder, "(\\Seen)")
        except Exception as exc:
            log.warning(
                "mailbox %s: sent mail not kept in %s: %s",
                mailbox.key,
                mailbox.sent_folder,
                exc,
            )


async def deliver(
    mailbox: MailboxConfig, mail: EmailMessage, to: list[str], wait: float = 60.0
) -> None:
    """Hand ``mail`` to the mailbox's SMTP server for ``to``: a temporary failure raises
    :class:`SendError`, a permanent one :class:`PermanentSendError` (a refused single
    recipient: :class:`RecipientUnreachableError`)."""
    smtp = mailbox.smtp
    try:
        await aiosmtplib.send(
            mail,
            sender=mailbox.address,
            recipients=to,
            hostname=smtp.host,
            port=smtp.port,
            username=smtp.user or None,
            password=smtp.password or None,
            use_tls=smtp.security == "tls",
            start_tls=smtp.security == "starttls",
            tls_context=smtp.tls_context(),
            timeout=wait,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        codes = [e.code for e in exc.recipients]
        if all(400 <= c < 500 for c in codes):
            raise SendError(f"recipients deferred: {codes}") from exc
        refused = exc.recipients[0]
        if len(to) == 1:
            raise RecipientUnreachableError(
                IdentityRef(IdentityKind.EMAIL, to[0]), f"{refused.code} {refused.message}"
            ) from exc
        raise PermanentSendError(f"recipients refused: {codes}") from exc
    except aiosmtplib.SMTPResponseException as exc:
        if exc.code >= 500:
            raise PermanentSendError(f"SMTP {exc.code}: {exc.message}") from exc
        raise SendError(f"SMTP {exc.code}: {exc.message}") from exc
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        raise SendError(f"SMTP {smtp.host}:{smtp.port}: {type(exc).__name__}") from exc


async def _search_header(client: Any, name: str, value: str) -> list[int]:
    response = imap.check(
        await client.uid_search(f'HEADER {name} "{value}"', charset=None), "SEARCH"
    )
    uids: list[int] = []
    for line in response.lines:
        text = bytes(line).decode("ascii", "replace") if isinstance(line, bytes) else ""
        uids += [int(x) for x in text.replace("SEARCH", "").split() if x.isdigit()]
    return sorted(uids)
