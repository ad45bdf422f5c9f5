"""A Bot API update → what the core should do with it (pure: no network, no storage).

A message's idempotency key is its own identity in Telegram, ``"<chat_id>:<message_id>"``,
so that one message seen by polling and again by a webhook is stored once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from aiogram.types import Message, Update

from connectors.telegram.config import BotConfig
from connectors.telegram.media import FileRef
from crm_core.contracts import Edit, IdentityRef, InboundMessage
from crm_core.enums import Channel, IdentityKind

START = "/start"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """Store this message; ``files`` are fetched first and become its attachments."""

    message: InboundMessage
    files: tuple[FileRef, ...] = ()


@dataclass(frozen=True, slots=True)
class EditedMessage:
    """Apply this edit; if the original was never stored, store ``fallback`` instead."""

    edit: Edit
    fallback: NewMessage


Action = NewMessage | EditedMessage


def external_id(message: Message) -> str:
    return f"{message.chat.id}:{message.message_id}"


def map_update(update: Update, bot: BotConfig) -> Action | None:
    """What to do with ``update``; None for updates the hub does not keep (groups, polls...)."""
    if update.message is not None:
        return _new(update.message, update.update_id, bot)
    if update.edited_message is not None:
        new = _new(update.edited_message, update.update_id, bot)
        if new is None:
            return None
        edited = update.edited_message.edit_date or update.edited_message.date
        return EditedMessage(
            Edit(
                channel=Channel.TELEGRAM,
                channel_account=bot.key,
                external_id=new.message.external_id,
                text=new.message.text,
                edited_at=_aware(edited),
            ),
            new,
        )
    return None


def _new(message: Message, update_id: int, bot: BotConfig) -> NewMessage | None:
    sender = message.from_user
    if message.chat.type != "private" or sender is None or sender.is_bot:
        return None  # a sales bot talks to people one to one
    identities = [IdentityRef(IdentityKind.TELEGRAM, str(sender.id))]
    name = " ".join(p for p in (sender.first_name, sender.last_name) if p) or sender.username
    text, files = _content(message)
    contact = message.contact
    if contact is not None and contact.user_id == sender.id:
        # the client shared their own phone (the "share my number" button)
        identities.append(IdentityRef(IdentityKind.PHONE, contact.phone_number))
    inbound = InboundMessage(
        channel=Channel.TELEGRAM,
        channel_account=bot.key,
        external_id=external_id(message),
        identities=tuple(identities),
        occurred_at=_aware(message.date),
        display_name=name,
        handle=sender.username,
        text=text,
        raw_ref=f"update:{update_id}",
    )
    payload = start_payload(message.text)
    if payload:
        link = bot.start_link(payload)
        inbound = replace(inbound, attribution=link.attribution, funnel=link.funnel)
    return NewMessage(inbound, files)


def start_payload(text: str | None) -> str | None:
    """The payload of ``/start <payload>`` (``t.me/<bot>?start=<payload>``), if any."""
    if not text or not text.startswith(START):
        return None
    command, _, rest = text.partition(" ")
    if command != START and not command.startswith(START + "@"):
        return None
    return rest.strip() or None


def _content(message: Message) -> tuple[str, tuple[FileRef, ...]]:
    """Readable text for the inbox, and the files to fetch."""
    parts: list[str] = []
    files: list[FileRef] = []
    body = message.text or message.caption or ""
    if message.reply_to_message is not None:
        quoted = message.reply_to_message.text or message.reply_to_message.caption or "…"
        parts.append("↩ " + _shorten(quoted))
    unique = message.message_id
    if message.photo:
        largest = max(message.photo, key=lambda p: p.width * p.height)
        files.append(
            FileRef(largest.file_id, f"photo_{unique}.jpg", "image/jpeg", largest.file_size)
        )
    if message.document is not None:
        d = message.document
        files.append(
            FileRef(
                d.file_id,
                d.file_name or f"document_{unique}",
                d.mime_type or "application/octet-stream",
                d.file_size,
            )
        )
    if message.voice is not None:
        v = message.voice
        files.append(
            FileRef(v.file_id, f"voice_{unique}.ogg", v.mime_type or "audio/ogg", v.file_size)
        )
        if not body:
            body = f"[voice message, {v.duration} s]"
    if message.audio is not None:
        a = message.audio
        files.append(
            FileRef(
                a.file_id,
                a.file_name or f"audio_{unique}.mp3",
                a.mime_type or "audio/mpeg",
                a.file_size,
            )
        )
    if message.video is not None:
        v2 = message.video
        files.append(
            FileRef(
                v2.file_id,
                v2.file_name or f"video_{unique}.mp4",
                v2.mime_type or "video/mp4",
                v2.file_size,
            )
        )
    if message.video_note is not None:
        n = message.video_note
        files.append(FileRef(n.file_id, f"video_note_{unique}.mp4", "video/mp4", n.file_size))
        if not body:
            body = f"[video message, {n.duration} s]"
    if message.sticker is not None:
        s = message.sticker
        label = " ".join(x for x in (s.emoji, f"from {s.set_name}" if s.set_name else None) if x)
        body = f"[sticker {label}]" if label else "[sticker]"
    if message.contact is not None:
        c = message.contact
        who = " ".join(x for x in (c.first_name, c.last_name) if x)
        body = f"[contact: {who}, {c.phone_number}]" if who else f"[contact: {c.phone_number}]"
    if message.location is not None:
        loc = message.location
        where = f"{loc.latitude:.6f}, {loc.longitude:.6f}"
        if message.venue is not None:
            where = f"{message.venue.title}, {message.venue.address} ({where})"
        body = f"[location: {where}]"
    if body:
        parts.append(body)
    return "\n".join(parts), tuple(files)


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _aware(moment: datetime | int) -> datetime:
    if isinstance(moment, int):
        return datetime.fromtimestamp(moment, UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
