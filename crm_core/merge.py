"""Merging two contacts into one, and undoing it.

A merge moves the identities, touches, conversations, deals, tasks and calls of the
*merged* contact to the *survivor*, fills the survivor's blank fields, and marks
the merged contact ``merged_into`` the survivor (it is kept, not deleted). The
:class:`ContactMerge` row lists every moved id and the fields it changed, so that
:func:`undo_merge` can put each back.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.models import (
    Call,
    Contact,
    ContactIdentity,
    ContactMerge,
    Conversation,
    Deal,
    Task,
    Touch,
)
from crm_core.snapshots import ContactSnapshot, IdentitySnapshot

_MOVABLE: dict[str, Any] = {
    "identities": ContactIdentity,
    "touches": Touch,
    "conversations": Conversation,
    "deals": Deal,
    "tasks": Task,
    "calls": Call,
}
_FILLED_FIELDS = ("name", "company", "segment", "owner_id")


class MergeError(Exception):
    """A merge or its undo that cannot be done; the message says why."""


def merge_contacts(
    session: Session, survivor_id: int, merged_id: int, reason: str, journal: Journal
) -> ContactMerge:
    """Merge contact ``merged_id`` into ``survivor_id``; returns the merge record."""
    if survivor_id == merged_id:
        raise MergeError("a contact cannot be merged into itself")
    survivor = _contact(session, survivor_id)
    merged = _contact(session, merged_id)
    if merged.merged_into_id is not None or survivor.merged_into_id is not None:
        raise MergeError("one of the contacts is already merged into another")
    moved: dict[str, Any] = {}
    for name, table in _MOVABLE.items():
        ids = list(session.scalars(select(table.id).where(table.contact_id == merged.id)))
        if ids:
            session.execute(update(table).where(table.id.in_(ids)).values(contact_id=survivor.id))
        moved[name] = ids

    moved["survivor_before"] = _snapshot(survivor)
    for name in _FILLED_FIELDS:
        if getattr(survivor, name) is None and getattr(merged, name) is not None:
            setattr(survivor, name, getattr(merged, name))
    moved["survivor_after"] = _snapshot(survivor)
    survivor.updated_at = journal.now
    merged.merged_into_id = survivor.id
    merged.updated_at = journal.now

    record = ContactMerge(
        survivor_id=survivor.id,
        merged_id=merged.id,
        reason=reason,
        moved=moved,
        actor=journal.actor,
        created_at=journal.now,
    )
    session.add(record)
    session.flush()
    payload = {"merge_id": record.id, "contact_id": survivor.id, "merged_contact_id": merged.id}
    journal.recorded_and_emitted(
        "contact.merged",
        "contact",
        survivor.id,
        payload,
        event_key=record.id,
        about=_contact_snapshot(session, survivor),
    )
    return record


def undo_merge(session: Session, merge_id: int, journal: Journal) -> ContactMerge:
    record = session.get(ContactMerge, merge_id, with_for_update=True)
    if record is None:
        raise LookupError(f"merge {merge_id} not found")
    if record.undone_at is not None:
        raise MergeError(f"merge {merge_id} was already undone")
    survivor = _contact(session, record.survivor_id)
    merged = _contact(session, record.merged_id)
    if survivor.merged_into_id is not None:
        raise MergeError(
            f"contact {survivor.id} was itself merged into {survivor.merged_into_id} later: "
            "undo that merge first"
        )
    moved = record.moved
    for name, table in _MOVABLE.items():
        ids = moved.get(name) or []
        if ids:
            # Only what still sits on the survivor goes back.
            session.execute(
                update(table)
                .where(table.id.in_(ids), table.contact_id == survivor.id)
                .values(contact_id=merged.id)
            )
    after = moved["survivor_after"]
    for name, previous in moved["survivor_before"].items():
        # A field someone changed after the merge keeps its newer value.
        if getattr(survivor, name) == after.get(name):
            setattr(survivor, name, previous)
    merged.merged_into_id = None
    merged.updated_at = journal.now
    survivor.updated_at = journal.now
    record.undone_at = journal.now
    session.flush()
    payload = {"merge_id": record.id, "contact_id": survivor.id, "merged_contact_id": merged.id}
    journal.recorded_and_emitted(
        "contact.merge_undone",
        "contact",
        survivor.id,
        payload,
        event_key=record.id,
        about=_contact_snapshot(session, survivor),
    )
    return record


def _contact(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise LookupError(f"contact {contact_id} not found")
    return contact


def _contact_snapshot(session: Session, contact: Contact) -> ContactSnapshot:
    """The survivor as it is now, with its identities (one read, by its indexed id)."""
    session.flush()
    identities = session.execute(
        select(ContactIdentity.kind, ContactIdentity.value)
        .where(ContactIdentity.contact_id == contact.id)
        .order_by(ContactIdentity.id)
    ).all()
    return ContactSnapshot.of(contact, tuple(IdentitySnapshot(k, v) for k, v in identities))


def _snapshot(contact: Contact) -> dict[str, Any]:
    return {name: getattr(contact, name) for name in _FILLED_FIELDS}
