"""One fetched mail into the core: a lead, a reply in a thread, or nothing (guards)."""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from connectors.email.config import MailboxConfig
from connectors.email.parser import ParsedMail, parse
from connectors.email.threads import conversation_hint
from connectors.store import BlobStore
from crm_core.contracts import Attachment, Checkpoint, IdentityRef, InboundMessage, Ingestor
from crm_core.enums import Channel, IdentityKind

log = logging.getLogger(__name__)

UNREADABLE = "(this message could not be read; the original mail is kept as it arrived)"


class Outcome(enum.StrEnum):
    INGESTED = "ingested"
    DUPLICATE = "duplicate"  # the same Message-ID and the same content: stored once
    REUSED_ID = "reused_id"  # a Message-ID seen before with other content: stored too
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    OWN = "own"
    UNATTRIBUTED = "unattributed"  # no sender to file it under: kept raw, logged
    REJECTED = "rejected"  # the core refused it (bad identity): kept raw, logged
    PARKED = "parked"  # its handling kept raising: parked with the raw mail's key, skipped


class MailIntake:
    def __init__(
        self,
        mailbox: MailboxConfig,
        ingestor: Ingestor,
        store: BlobStore,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mailbox = mailbox
        self.ingestor = ingestor
        self.store = store
        self.now = now

    async def accept(self, raw: bytes, checkpoint: Checkpoint | None = None) -> Outcome:
        """File one mail; the checkpoint goes in the same transaction when it is stored.

        Auto-replies, bounces and our own mail create no lead and are not stored as
        messages (a bounce flags the address); their position is covered by the next
        stored message's checkpoint, and re-reading them after a restart is harmless.
        """
        mail = parse(raw)
        where = self._where(mail, checkpoint)
        if mail.sender is not None and mail.sender in self.mailbox.own_addresses:
            return Outcome.OWN
        if mail.bounce:
            for address in mail.failed_recipients:
                if address not in self.mailbox.own_addresses:
                    await self.ingestor.mark_unreachable(
                        IdentityRef(IdentityKind.EMAIL, address), f"bounce: {mail.subject[:200]}"
                    )
            log.info("%s: a bounce for %d address(es)", where, len(mail.failed_recipients))
            return Outcome.BOUNCE
        if mail.auto_reply:
            log.info("%s: an auto-reply, skipped", where)
            return Outcome.AUTO_REPLY
        raw_key = await self.store.put(raw, "mail")
        if mail.sender is None:
            log.warning("%s: no usable sender; kept as %s", where, raw_key)
            return Outcome.UNATTRIBUTED
        # Mailers reuse Message-IDs: the content first seen under one is remembered
        # (a mark stored with that message), and a mail whose content differs is kept
        # under the Message-ID and its digest. The same mail again is stored once.
        mark = content_mark(mail, raw)
        seen = await self.ingestor.checkpoint(Channel.EMAIL, self.mailbox.key, mark.key)
        reused = seen is not None and seen != mark.value
        external_id = variant_id(mail.message_id, mark.value) if reused else mail.message_id
        message = InboundMessage(
            channel=Channel.EMAIL,
            channel_account=self.mailbox.key,
            external_id=external_id,
            identities=(IdentityRef(IdentityKind.EMAIL, mail.sender),),
            occurred_at=mail.occurred_at or self.now(),
            display_name=mail.display_name,
            text=_text(mail),
            attachments=await self._attachments(mail, where),
            raw_ref=raw_key,
            thread_refs=mail.thread_refs,
            conversation_hint=conversation_hint(mail.subject),
            marks=() if seen is not None else (mark,),
        )
        try:
            result = await self.ingestor.ingest(message, checkpoint)
        except ValueError as exc:  # the core's InvalidInboundError: nothing was written
            log.warning("%s: refused (%s); kept as %s", where, exc, raw_key)
            return Outcome.REJECTED
        if result.duplicate:
            log.info(
                "mailbox %s: mail %s already stored (message %d): skipped",
                self.mailbox.key,
                external_id,
                result.message_id,
            )
            return Outcome.DUPLICATE
        if reused:
            log.warning(
                "mailbox %s: mail %s reuses a Message-ID seen before with other content: "
                "stored as %s (message %d)",
                self.mailbox.key,
                mail.message_id,
                external_id,
                result.message_id,
            )
            return Outcome.REUSED_ID
        return Outcome.INGESTED

    def _where(self, mail: ParsedMail, checkpoint: Checkpoint | None) -> str:
        """How log lines name a mail: its mailbox, folder and UID (when read over IMAP)
        and its Message-ID."""
        place = self.mailbox.key
        if checkpoint is not None:
            uid = checkpoint.value.rpartition(":")[2]
            place = f"{place}/{checkpoint.key} uid {uid}"
        return f"mailbox {place}: mail {mail.message_id}"

    async def _attachments(self, mail: ParsedMail, where: str) -> tuple[Attachment, ...]:
        files: list[Attachment] = []
        if mail.html:
            data = mail.html.encode("utf-8")
            key = await self.store.put(data, "html")
            files.append(Attachment("message.html", "text/html", len(data), storage_key=key))
        budget = self.mailbox.max_message_attachments_bytes
        for part in mail.parts:
            size = len(part.data)
            if size > self.mailbox.max_attachment_bytes or size > budget:
                log.info(
                    "%s: attachment %r (%d bytes) over the limit: not stored",
                    where,
                    part.name,
                    size,
                )
                files.append(Attachment(part.name, part.content_type, size))
                continue
            budget -= size
            key = await self.store.put(part.data, "attachment")
            files.append(Attachment(part.name, part.content_type, size, storage_key=key))
        return tuple(files)


def content_mark(mail: ParsedMail, raw: bytes) -> Checkpoint:
    """``content:<hash of the Message-ID>`` = the SHA-256 of what the client wrote: sender,
    subject, date, text, HTML and files, not the headers each delivery adds (Received,
    Delivered-To...). A mail that could not be parsed is hashed whole."""
    if mail.malformed and not mail.text:
        digest = hashlib.sha256(raw).hexdigest()
    else:
        content = [
            mail.sender,
            mail.display_name,
            mail.subject,
            mail.occurred_at.isoformat() if mail.occurred_at else None,
            mail.text,
            mail.quoted,
            mail.signature,
            mail.html,
            [(p.name, p.content_type, hashlib.sha256(p.data).hexdigest()) for p in mail.parts],
        ]
        encoded = json.dumps(content, ensure_ascii=False).encode("utf-8", "surrogatepass")
        digest = hashlib.sha256(encoded).hexdigest()
    key = hashlib.sha256(mail.message_id.encode("utf-8", "surrogatepass")).hexdigest()
    return Checkpoint(f"content:{key[:48]}", digest)


def variant_id(message_id: str, digest: str) -> str:
    """The external id of a mail that reuses ``message_id`` with other content."""
    return f"{message_id[:170]}#{digest[:24]}"


def _text(mail: ParsedMail) -> str:
    if mail.malformed:
        return UNREADABLE
    body = mail.text or ("(no text)" if not mail.parts else "")
    return f"{mail.subject}\n\n{body}".strip() if mail.subject else body
