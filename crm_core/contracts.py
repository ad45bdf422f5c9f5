"""The value objects that cross the house's walls.

Connectors and webhooks build :class:`InboundMessage` and read
:class:`IngestResult`; they never see the ORM or a session. :func:`same_secret` is how
every channel compares a secret a peer presents.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from crm_core.enums import CallDisposition, Channel, Direction, IdentityKind, Segment


@dataclass(frozen=True, slots=True)
class IdentityRef:
    """How the sender can be reached, as the channel gave it (normalized by ingest)."""

    kind: IdentityKind
    value: str


@dataclass(frozen=True, slots=True)
class Attachment:
    """Metadata of a file the client sent; the bytes live in the attachment store.

    ``failure`` says why the bytes are not stored (a file the channel could not hand over);
    it is written to the stored JSON only when set, so older rows read the same.
    """

    name: str
    content_type: str
    size: int
    storage_key: str | None = None
    url: str | None = None
    failure: str | None = None

    def as_json(self) -> dict[str, str | int | None]:
        shown: dict[str, str | int | None] = {
            "name": self.name,
            "content_type": self.content_type,
            "size": self.size,
            "storage_key": self.storage_key,
            "url": self.url,
        }
        if self.failure is not None:
            shown["failure"] = self.failure
        return shown


@dataclass(frozen=True, slots=True)
class Attribution:
    """Where a touch came from: the channel plus UTM tags, click ids and pages."""

    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    utm_content: str | None = None
    utm_term: str | None = None
    gclid: str | None = None
    yclid: str | None = None
    fbclid: str | None = None
    referrer: str | None = None
    landing_page: str | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.__slots__)


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One phone call as a line saw it; ``key`` (``sip:<Call-ID>``) is its idempotency key.

    ``callback_sla`` is how soon a client whose call nobody answered is called back.
    """

    line: str
    call_id: str
    caller: str
    callee: str
    direction: Direction
    started_at: datetime
    disposition: CallDisposition
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    manager_id: int | None = None
    voicemail: Attachment | None = None
    recording: Attachment | None = None  # an answered call's recording (both sides)
    callback_sla: timedelta = timedelta(minutes=15)
    source: str = "sip"

    @property
    def key(self) -> str:
        return f"{self.source}:{self.call_id}"[:200]

    @property
    def duration_seconds(self) -> int:
        if self.answered_at is None or self.ended_at is None:
            return 0
        return max(0, int((self.ended_at - self.answered_at).total_seconds()))

    @property
    def missed(self) -> bool:
        """An inbound call that no manager talked in: the client is to be called back."""
        return self.direction is Direction.INBOUND and self.disposition is not (
            CallDisposition.ANSWERED
        )

    def summary(self) -> str:
        """What the inbox shows: ``Missed call from +7916..., 0:00``."""
        seconds = self.duration_seconds
        length = f"{seconds // 60}:{seconds % 60:02d}"
        if self.direction is Direction.OUTBOUND:
            return f"Outgoing call to {self.callee}, {length} ({self.disposition.value})"
        words = {
            CallDisposition.ANSWERED: "Answered call",
            CallDisposition.BUSY: "Missed call (busy)",
            CallDisposition.VOICEMAIL: "Voicemail",
            CallDisposition.REJECTED: "Missed call (rejected)",
            CallDisposition.FAILED: "Missed call (failed)",
        }
        return f"{words.get(self.disposition, 'Missed call')} from {self.caller}, {length}"


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One thing a client sent, through any channel, normalized.

    ``(channel_account, external_id)`` is the natural idempotency key: a repeat
    is a no-op that still answers success.
    """

    channel: Channel
    channel_account: str
    external_id: str
    identities: tuple[IdentityRef, ...]
    occurred_at: datetime
    display_name: str | None = None
    # the client's public name in the channel (a Telegram @username), kept on the first
    # identity for search; never an identity itself (a handle changes hands)
    handle: str | None = None
    company: str | None = None
    segment: Segment | None = None
    text: str = ""
    attachments: tuple[Attachment, ...] = ()
    attribution: Attribution = field(default_factory=Attribution)
    funnel: str | None = None
    raw_ref: str | None = None
    # Threading, for channels that have it (email): external ids of earlier messages of
    # this channel account that this one answers, best first, and a conversation id
    # from a token we put in our own messages (honoured only for the sender's contact).
    thread_refs: tuple[str, ...] = ()
    conversation_hint: int | None = None
    # A channel whose sessions own their conversation (site chat): the message goes to
    # ``conversation_hint`` or to a new conversation, never to another live conversation
    # of the contact (a visitor who typed a known email must not land in its chat).
    own_conversation: bool = False
    # A phone call (SIP line or PBX): stored as a call record beside the message.
    call: CallRecord | None = None
    # Marks of the channel account stored in the message's own transaction, a repeat
    # included (email: the digest of the content first seen under a Message-ID).
    marks: tuple[Checkpoint, ...] = ()
    # A platform's test lead (Google Ads' ``is_test``): stored on a contact of its own
    # marked ``is_test``, without identities (its contact details stay in the text),
    # routed to no one, given no tasks, and left out of reports.
    test: bool = False

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError("occurred_at must be timezone-aware")


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What ingest did with one :class:`InboundMessage`."""

    duplicate: bool
    contact_id: int
    conversation_id: int
    message_id: int
    deal_id: int | None = None
    task_id: int | None = None
    assignee_id: int | None = None
    contact_created: bool = False
    conversation_created: bool = False
    deal_created: bool = False
    merged_contact_ids: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A reply to send through a channel; ``message_id`` is its idempotency key."""

    message_id: int
    conversation_id: int
    channel: Channel
    channel_account: str
    recipients: tuple[IdentityRef, ...]
    text: str
    attachments: tuple[Attachment, ...] = ()
    in_reply_to: str | None = None
    subject: str | None = None  # channels with subjects, when it answers nothing (email)


@dataclass(frozen=True, slots=True)
class DeliveryReceipt:
    """What the channel answered: its own id for the sent message, if it gives one."""

    external_id: str | None = None


class SendError(Exception):
    """A send that may succeed later (network, rate limit, 5xx): the outbox retries it."""


class PermanentSendError(SendError):
    """A send that will never succeed (blocked by the user, no such address): not retried."""


class RecipientUnreachableError(PermanentSendError):
    """The channel says this identity can no longer be reached (a bot blocked, a bounce)."""

    def __init__(self, identity: IdentityRef, reason: str) -> None:
        super().__init__(reason)
        self.identity = identity
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A reading position of the message's channel account (an IMAP folder's UID...),
    stored in the same transaction as the message that advances it."""

    key: str
    value: str


@dataclass(frozen=True, slots=True)
class Edit:
    """A client changed a message they sent: the stored text changes, the old is kept."""

    channel: Channel
    channel_account: str
    external_id: str
    text: str
    edited_at: datetime


class Ingestor(Protocol):
    """What connectors and webhooks may ask of the core (``crm_core.ingest.IngestService``)."""

    async def ingest(
        self, message: InboundMessage, checkpoint: Checkpoint | None = None
    ) -> IngestResult: ...

    async def checkpoint(self, channel: Channel, channel_account: str, key: str) -> str | None:
        """The stored value of a checkpoint, or None."""
        ...

    async def edit(self, edit: Edit) -> bool:
        """Apply an edit; False when the original message is not stored."""
        ...

    async def mark_unreachable(self, identity: IdentityRef, reason: str) -> bool:
        """Flag an identity the channel cannot reach any more; False when it is unknown."""
        ...


class ChannelSender(Protocol):
    """Implemented by each connector for its channel."""

    async def send(self, message: OutboundMessage) -> DeliveryReceipt: ...


def wire_bytes(text: str) -> bytes:
    """The bytes a peer sent for ``text``; never raises.

    aiohttp reads header bytes that are not UTF-8 as surrogate escapes, so a plain
    ``encode()`` of a header value raises; this gives the original bytes back. A lone
    surrogate from elsewhere (a JSON ``"\\ud800"``) is kept as its surrogate code units.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def same_secret(given: str | bytes | None, expected: str | bytes) -> bool:
    """Constant-time equality of a presented secret and the configured one, as bytes.

    Whatever a peer sent (no value, bytes that are not UTF-8) is compared, never raises.
    """
    if given is None:
        return False
    a = wire_bytes(given) if isinstance(given, str) else given
    b = wire_bytes(expected) if isinstance(expected, str) else expected
    return hmac.compare_digest(a, b)
