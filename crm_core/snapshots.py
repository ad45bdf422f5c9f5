"""What an event says about its object: the object as it was when the event happened.

Each kind of object has one frozen dataclass here. An emit site builds it in the
transaction of the event, from values it already has (the ingest path never reads a
row for it), and puts :meth:`Snapshot.json` next to the event's ids, under the object's
name (``"deal": {...}``). The same classes are the event schemas of the OpenAPI
document (:mod:`crm_core.event_types`, rendered by ``hub.api.webhooks_doc``), so the
document cannot say what the code does not send.

Never a secret in a snapshot (no token or password hash, no webhook secret); a client's
text is data, sent as JSON like any other value.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.contracts import Attribution, IdentityRef
from crm_core.models import Call, Contact, Conversation, Deal, Funnel, Message, Task, Touch


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Snapshot):
        return value.json()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


_NAMES: dict[type[Snapshot], tuple[str, ...]] = {}


def _names(kind: type[Snapshot]) -> tuple[str, ...]:
    names = _NAMES.get(kind)
    if names is None:
        names = _NAMES[kind] = tuple(f.name for f in fields(kind))  # type: ignore[arg-type]
    return names


class Snapshot:
    """A frozen dataclass of plain values; :meth:`json` is its event form."""

    __slots__ = ()
    KEY: ClassVar[str] = ""  # the event's key for it: "deal", "contact", ...

    def json(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in _names(type(self))}


def _amount(amount: Decimal | None) -> str | None:
    return None if amount is None else f"{amount:.2f}"


@dataclass(frozen=True, slots=True)
class IdentitySnapshot(Snapshot):
    """One way to reach the contact: ``kind`` (phone, email, telegram, ...) and value."""

    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class ContactSnapshot(Snapshot):
    KEY: ClassVar[str] = "contact"
    id: int
    name: str | None
    company: str | None
    segment: str | None
    owner_id: int | None
    identities: tuple[IdentitySnapshot, ...]
    created_at: datetime
    # an ad platform's test lead: kept, but routed to no one and out of reports
    is_test: bool = False

    @classmethod
    def of(cls, row: Contact, identities: tuple[IdentitySnapshot, ...]) -> ContactSnapshot:
        return cls(
            row.id,
            row.name,
            row.company,
            row.segment,
            row.owner_id,
            identities,
            row.created_at,
            bool(row.is_test),
        )

    @staticmethod
    def identities_of(refs: tuple[IdentityRef, ...]) -> tuple[IdentitySnapshot, ...]:
        return tuple(IdentitySnapshot(i.kind.value, i.value) for i in refs)


@dataclass(frozen=True, slots=True)
class AttributionSnapshot(Snapshot):
    """Where the deal's first touch came from (UTM tags, click ids, pages)."""

    channel: str
    channel_account: str
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_content: str | None
    utm_term: str | None
    gclid: str | None
    yclid: str | None
    fbclid: str | None
    referrer: str | None
    landing_page: str | None

    @classmethod
    def of(cls, channel: str, channel_account: str, a: Attribution) -> AttributionSnapshot:
        return cls(
            channel,
            channel_account,
            a.utm_source,
            a.utm_medium,
            a.utm_campaign,
            a.utm_content,
            a.utm_term,
            a.gclid,
            a.yclid,
            a.fbclid,
            a.referrer,
            a.landing_page,
        )


@dataclass(frozen=True, slots=True)
class DealSnapshot(Snapshot):
    """A deal; ``funnel`` and ``stage`` are codes, ``amount`` a decimal string ("1500.00")."""

    KEY: ClassVar[str] = "deal"

    id: int
    title: str
    funnel: str
    funnel_id: int
    stage: str
    stage_id: int
    is_open: bool
    amount: str | None
    currency: str
    contact_id: int
    owner_id: int | None
    conversation_id: int | None
    lost_reason: str | None
    routing_reason: str | None
    tags: tuple[str, ...]
    attribution: AttributionSnapshot | None
    created_at: datetime
    closed_at: datetime | None
    product: str | None = None

    @classmethod
    def of(cls, session: Session, row: Deal, stage: str) -> DealSnapshot:
        """The deal ``row`` in ``stage`` (its code); one indexed read, of its funnel's
        code and its first touch."""
        t = Touch
        found = session.execute(
            select(
                Funnel.code,
                t.channel,
                t.channel_account,
                t.utm_source,
                t.utm_medium,
                t.utm_campaign,
                t.utm_content,
                t.utm_term,
                t.gclid,
                t.yclid,
                t.fbclid,
                t.referrer,
                t.landing_page,
            )
            .select_from(Funnel)
            .outerjoin(t, t.id == row.source_touch_id)
            .where(Funnel.id == row.funnel_id)
        ).one()
        touch = AttributionSnapshot(*list(found[1:])) if found[1] is not None else None
        return cls(
            row.id,
            row.title,
            found[0],
            row.funnel_id,
            stage,
            row.stage_id,
            row.is_open,
            _amount(row.amount),
            row.currency,
            row.contact_id,
            row.owner_id,
            row.conversation_id,
            row.lost_reason,
            row.routing_reason,
            tuple(row.tags or ()),
            touch,
            row.created_at,
            row.closed_at,
            row.product,
        )


@dataclass(frozen=True, slots=True)
class ConversationSnapshot(Snapshot):
    KEY: ClassVar[str] = "conversation"
    id: int
    contact_id: int
    channel_account_id: int
    status: str
    assignee_id: int | None
    team_id: int | None
    routing_reason: str | None
    tags: tuple[str, ...]
    opened_at: datetime
    first_response_at: datetime | None
    sla_breached_at: datetime | None
    last_message_at: datetime
    closed_at: datetime | None

    @classmethod
    def of(cls, row: Conversation) -> ConversationSnapshot:
        return cls(
            row.id,
            row.contact_id,
            row.channel_account_id,
            str(row.status),
            row.assignee_id,
            row.team_id,
            row.routing_reason,
            tuple(row.tags or ()),
            row.opened_at,
            row.first_response_at,
            row.sla_breached_at,
            row.last_message_at,
            row.closed_at,
        )


@dataclass(frozen=True, slots=True)
class AttachmentSnapshot(Snapshot):
    """A file's metadata (the bytes are in the attachment store, by ``storage_key``)."""

    name: str
    content_type: str
    size: int
    storage_key: str | None
    url: str | None
    failure: str | None

    @classmethod
    def all_of(cls, stored: list[dict[str, Any]]) -> tuple[AttachmentSnapshot, ...]:
        return tuple(
            cls(
                str(a.get("name", "")),
                str(a.get("content_type", "")),
                int(a.get("size") or 0),
                a.get("storage_key"),
                a.get("url"),
                a.get("failure"),
            )
            for a in stored
        )


@dataclass(frozen=True, slots=True)
class MessageSnapshot(Snapshot):
    """A message: ``direction`` in (from the client), out (a reply) or note (internal);
    ``channel`` where the emit site knows it (null for a note or a status change)."""

    KEY: ClassVar[str] = "message"

    id: int
    conversation_id: int
    channel_account_id: int
    channel: str | None
    direction: str
    author_kind: str
    author_manager_id: int | None
    text: str
    attachments: tuple[AttachmentSnapshot, ...]
    external_id: str | None
    delivery_status: str
    delivery_error: str | None
    occurred_at: datetime
    created_at: datetime

    @classmethod
    def of(cls, row: Message, channel: str | None = None) -> MessageSnapshot:
        return cls(
            row.id,
            row.conversation_id,
            row.channel_account_id,
            channel,
            str(row.direction),
            str(row.author_kind),
            row.author_manager_id,
            row.text,
            AttachmentSnapshot.all_of(row.attachments or []),
            row.external_id,
            str(row.delivery_status),
            row.delivery_error,
            row.occurred_at,
            row.created_at,
        )


@dataclass(frozen=True, slots=True)
class TaskSnapshot(Snapshot):
    KEY: ClassVar[str] = "task"
    id: int
    kind: str
    title: str
    status: str
    assignee_id: int | None
    author_id: int | None
    due_at: datetime | None
    done_at: datetime | None
    overdue_at: datetime | None
    contact_id: int | None
    deal_id: int | None
    conversation_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, row: Task) -> TaskSnapshot:
        return cls(
            row.id,
            str(row.kind),
            row.title,
            str(row.status),
            row.assignee_id,
            row.author_id,
            row.due_at,
            row.done_at,
            row.overdue_at,
            row.contact_id,
            row.deal_id,
            row.conversation_id,
            row.created_at,
        )


@dataclass(frozen=True, slots=True)
class CallSnapshot(Snapshot):
    """A phone call; ``disposition`` answered, missed, busy, ...; voicemail not included."""

    KEY: ClassVar[str] = "call"

    id: int
    call_key: str
    contact_id: int
    conversation_id: int
    message_id: int | None
    direction: str
    caller: str
    callee: str
    manager_id: int | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_seconds: int
    disposition: str

    @classmethod
    def of(cls, row: Call) -> CallSnapshot:
        return cls(
            row.id,
            row.call_key,
            row.contact_id,
            row.conversation_id,
            row.message_id,
            str(row.direction),
            row.caller,
            row.callee,
            row.manager_id,
            row.started_at,
            row.answered_at,
            row.ended_at,
            row.duration_seconds or 0,
            str(row.disposition),
        )
