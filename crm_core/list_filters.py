"""What the contacts and deals lists may be narrowed to, as conditions their queries add.

Every condition is added to the viewer's scope (``crm_core.access``), never in place of
it: a filter only ever narrows what the viewer may see.

- *Owner*: the manager a contact or deal belongs to (``owner_id``), or nobody.
- *Created*: ``created_at`` from ``start`` (inclusive) to ``end`` (exclusive); the API makes
  both from days in the company's time zone or from moments, each end inclusive.
- *Channel* (contacts): the contact has a conversation through a door of that channel, or an
  identity that channel reaches (a phone number for ``phone``, a site visitor id for
  ``site_chat``...).
- *Amount* (deals): between the two bounds, both inclusive; a deal without an amount
  matches no amount bound.
- *Source* (deals): the deal's source touch, the touch that opened it (the sources
  report's first touch): its channel (``form``) or its channel and door
  (``form:landing-pg``, the report's ``source``), and its ``utm_source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.orm import InstrumentedAttribute

from crm_core.enums import Channel
from crm_core.models import ChannelAccount, Contact, ContactIdentity, Conversation, Deal, Touch
from crm_core.replies import REACHABLE


@dataclass(frozen=True, slots=True)
class Created:
    """A half-open span of creation times (either end may be open)."""

    start: datetime | None = None
    end: datetime | None = None  # exclusive

    def on(self, column: InstrumentedAttribute[datetime]) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = []
        if self.start is not None:
            found.append(column >= self.start)
        if self.end is not None:
            found.append(column < self.end)
        return found


@dataclass(frozen=True, slots=True)
class ContactFilter:
    owner_id: int | None = None
    unowned: bool = False  # owner_id=none: contacts that belong to no manager
    created: Created = Created()
    channel: Channel | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found = _owner(Contact.owner_id, self.owner_id, self.unowned)
        found += self.created.on(Contact.created_at)
        if self.channel is not None:
            found.append(_reached_by(self.channel))
        return found


@dataclass(frozen=True, slots=True)
class DealFilter:
    owner_id: int | None = None
    unowned: bool = False
    created: Created = Created()
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    source_channel: str | None = None
    source_account: str | None = None  # with source_channel: one door of that channel
    utm_source: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        found = _owner(Deal.owner_id, self.owner_id, self.unowned)
        found += self.created.on(Deal.created_at)
        if self.amount_min is not None:
            found.append(Deal.amount >= self.amount_min)
        if self.amount_max is not None:
            found.append(Deal.amount <= self.amount_max)
        touch: list[ColumnElement[bool]] = []
        if self.source_channel is not None:
            touch.append(Touch.channel == self.source_channel)
        if self.source_account is not None:
            touch.append(Touch.channel_account == self.source_account)
        if self.utm_source is not None:
            touch.append(Touch.utm_source == self.utm_source)
        if touch:
            found.append(Deal.source_touch_id.in_(select(Touch.id).where(*touch)))
        return found


EVERY_CONTACT = ContactFilter()
EVERY_DEAL = DealFilter()


def _owner(
    column: InstrumentedAttribute[int | None], owner_id: int | None, unowned: bool
) -> list[ColumnElement[bool]]:
    if unowned:
        return [column.is_(None)]
    if owner_id is not None:
        return [column == owner_id]
    return []


def _reached_by(channel: Channel) -> ColumnElement[bool]:
    """The contact has a conversation in ``channel``, or an identity it reaches."""
    doors = select(ChannelAccount.id).where(ChannelAccount.channel == channel.value)
    talked = exists().where(
        and_(Conversation.contact_id == Contact.id, Conversation.channel_account_id.in_(doors))
    )
    kinds = [kind.value for kind in REACHABLE.get(channel, ())]
    if not kinds:
        return talked
    known = exists().where(
        and_(ContactIdentity.contact_id == Contact.id, ContactIdentity.kind.in_(kinds))
    )
    return or_(talked, known)
