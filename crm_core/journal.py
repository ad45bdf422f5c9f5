"""Audit rows and outbox rows, written in the transaction of the change they describe."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from crm_core import tables
from crm_core.enums import OutboxStatus
from crm_core.fastsql import Prepared, Raw
from crm_core.snapshots import Snapshot

EVENTS_TOPIC = "events"  # one outbox row per transaction carries all its events
LEGACY_EVENT_TOPIC_PREFIX = "event."  # one row per event, as rows were written before
_AUDIT = Prepared.insert(
    tables.audit_log, ["occurred_at", "actor", "action", "entity_type", "entity_id", "changes"]
)
_OUTBOX = Prepared.insert(
    tables.outbox,
    [
        "topic",
        "idempotency_key",
        "payload",
        "status",
        "attempts",
        "next_attempt_at",
        "locked_until",
        "last_error",
        "created_at",
        "delivered_at",
    ],
)


@dataclass
class Journal:
    """Collects a transaction's audit entries and outbox rows; :meth:`flush` writes them.

    The events a transaction emits go out together, in the order they happened, as one
    outbox row (topic :data:`EVENTS_TOPIC`, payload ``{"events": [{"key", "payload"}]}``):
    a message's five or six events cost one row and one delivery instead of one each.
    That row's own key is new for each transaction; an event's key is what subscribers
    deduplicate by, so a change that may happen again is keyed by :meth:`occurrence`.
    ``outbox_rows`` counts what was written, so that the caller can wake the relay.
    """

    actor: str
    now: datetime
    audit: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    outbox_rows: int = 0

    def record(
        self, action: str, entity_type: str, entity_id: int, changes: dict[str, Any] | None = None
    ) -> None:
        self.audit.append(
            {
                "occurred_at": self.now,
                "actor": self.actor,
                "action": action,
                "entity_type": entity_type,
                "entity_id": entity_id,
                "changes": changes or {},
            }
        )

    def emit(
        self,
        event: str,
        key: int | str,
        payload: Mapping[str, Any],
        *,
        about: Snapshot | None = None,
    ) -> None:
        """An event for subscribers (outbound webhooks, inbox push), keyed ``event:key``.

        ``about`` is the object as it is now (:mod:`crm_core.snapshots`), sent under its
        name (``"deal": {...}``) next to the ids of ``payload``; the audit does not keep it.

        ``key`` names this occurrence: the created entity's id, the id of the row
        recording the change (a merge, a stage change), or, for any other change that may
        happen again (a manager changed twice), an :meth:`occurrence`. Never a key that
        a later change could repeat: webhook deliveries are deduplicated by it.
        """
        body = {"event": event, "occurred_at": self.now.isoformat(), **payload}
        if about is not None:
            body[about.KEY] = about.json()
        self.events.append({"key": f"{event}:{key}", "payload": body})

    def enqueue(self, topic: str, idempotency_key: str, payload: dict[str, Any]) -> None:
        self.outbox.append(
            {
                "topic": topic,
                "idempotency_key": idempotency_key,
                "payload": payload,
                "status": OutboxStatus.PENDING.value,
                "attempts": 0,
                "next_attempt_at": self.now,
                "locked_until": None,
                "last_error": None,
                "created_at": self.now,
                "delivered_at": None,
            }
        )

    def occurrence(self, *parts: object) -> str:
        """An event key for a change that may happen again (a close, a reassignment):
        its parts and a random tail, so that two changes in one instant never collide."""
        return ":".join([*(str(p) for p in parts), uuid.uuid4().hex[:16]])

    def recorded_and_emitted(
        self,
        action: str,
        entity_type: str,
        entity_id: int,
        payload: dict[str, Any],
        *,
        event_key: int | str | None = None,
        about: Snapshot | None = None,
    ) -> None:
        """The common case: an audit entry and an event of the same name (the event
        also carries ``about``, the object's snapshot; the audit entry does not)."""
        self.record(action, entity_type, entity_id, payload)
        self.emit(action, entity_id if event_key is None else event_key, payload, about=about)

    def flush(self, session: Session) -> None:
        if self.events:
            # Keyed by the transaction, not by its first event: two transactions may start
            # with events of the same key (the fan-out then delivers that event once).
            key = self.occurrence(EVENTS_TOPIC, self.events[0]["key"])
            self.enqueue(EVENTS_TOPIC, key, {"events": self.events})
            self.events = []
        raw = Raw.of(session)
        _AUDIT.executemany(raw, self.audit)
        _OUTBOX.executemany(raw, self.outbox)
        self.outbox_rows += len(self.outbox)
        self.audit = []
        self.outbox = []


def unpacked(payload: Mapping[str, Any], key: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    """The ``(key, event payload)`` pairs of an :data:`EVENTS_TOPIC` row, in order.

    A row written before events travelled together (topic ``event.<name>``, one event,
    keyed by the row's ``key``) is one pair, so that an upgrade delivers what it finds.
    """
    if "events" not in payload:
        return [(key, payload)]
    return [(str(e["key"]), e["payload"]) for e in payload["events"]]
