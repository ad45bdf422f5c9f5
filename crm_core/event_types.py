"""The events the core announces and what each one's data holds: one type per event.

:data:`EVENT_DATA` names every event an emit site sends (``crm_core.journal``), with
the type of its data (the webhook body's ``data``; the ids as before, and the object's
snapshot from :mod:`crm_core.snapshots` under its name). ``hub.api.webhooks_doc`` makes
the OpenAPI schemas of the webhooks from these types, and
``crm_core.webhook_subscriptions.KNOWN_EVENTS`` is their names; tests check that every
emitted name is here and that real bodies validate against the schemas.
"""

from __future__ import annotations

from typing import Any, NotRequired

from typing_extensions import TypedDict  # pydantic documents it (typing's before 3.12 not)

from crm_core.snapshots import (
    CallSnapshot,
    ContactSnapshot,
    ConversationSnapshot,
    DealSnapshot,
    MessageSnapshot,
    TaskSnapshot,
)


class IdentityData(TypedDict):
    kind: str
    value: str


class ContactCreated(TypedDict):
    contact_id: int
    name: str | None
    identities: list[IdentityData]
    contact: ContactSnapshot


class ContactMerged(TypedDict):
    """The merged contact's conversations, deals, ... now belong to ``contact_id``."""

    merge_id: int
    contact_id: int
    merged_contact_id: int
    contact: ContactSnapshot


class IdentityUnreachable(TypedDict):
    """A channel said the identity cannot be reached (the client blocked the bot, ...)."""

    contact_id: int
    kind: str
    value: str
    reason: str


class IdentityUnreachableCleared(TypedDict):
    contact_id: int
    identity_id: int
    kind: str
    value: str
    reason: str | None
    unreachable_at: str


class ConversationCreated(TypedDict):
    conversation_id: int
    contact_id: int
    assignee_id: int | None
    routing_reason: NotRequired[str | None]  # opened by a client's message
    channel: NotRequired[str]  # opened by a manager to answer on another channel
    conversation: ConversationSnapshot


class ConversationReassigned(TypedDict):
    conversation_id: int
    contact_id: int
    from_manager_id: int | None
    assignee_id: int | None
    reason: str | None
    conversation: ConversationSnapshot


class ConversationStatusChanged(TypedDict):
    conversation_id: int
    contact_id: int
    from_status: str
    status: str
    conversation: ConversationSnapshot


class ConversationSlaBreached(TypedDict):
    """Nobody answered in time; ``task_id`` is the head of sales' follow-up."""

    conversation_id: int
    assignee_id: int | None
    task_id: int
    conversation: ConversationSnapshot


class MessageCreated(TypedDict):
    """A client's message (``direction`` absent) or a reply (``direction`` "out")."""

    message_id: int
    conversation_id: int
    contact_id: int
    channel: str
    direction: NotRequired[str]
    message: MessageSnapshot


class NoteCreated(TypedDict):
    message_id: int
    conversation_id: int
    contact_id: int
    message: MessageSnapshot


class MessageEdited(TypedDict):
    message_id: int
    conversation_id: int
    message: MessageSnapshot


class MessageStatusChanged(TypedDict):
    message_id: int
    conversation_id: int
    status: str
    error: str | None
    message: MessageSnapshot


class DealCreated(TypedDict):
    """``funnel`` is the funnel's code; the deal's attribution is in ``deal``."""

    deal_id: int
    contact_id: int
    funnel: str
    stage_id: int
    owner_id: int | None
    deal: DealSnapshot


class DealStageChanged(TypedDict):
    deal_id: int
    contact_id: int
    from_stage_id: int | None
    stage_id: int
    stage: str
    kind: str
    deal: DealSnapshot


class DealClosed(DealStageChanged):
    lost_reason: str | None


class FieldChange(TypedDict):
    """One changed field; an amount is a decimal string ("1500.00")."""

    field: str
    old: str | int | None
    new: str | int | None


class DealUpdated(TypedDict):
    """A person changed the deal's title, amount, currency, owner or product."""

    deal_id: int
    contact_id: int
    changes: list[FieldChange]
    deal: DealSnapshot


class DealHeadNotified(TypedDict):
    deal_id: int
    stage: str
    text: str
    head_id: int | None
    deal: DealSnapshot


class TaskCreated(TypedDict):
    """What made the task, when not a person: ``automation`` (the stage's code),
    ``call_key`` (a missed call), ``conversation_id`` (a breached SLA)."""

    task_id: int
    kind: str
    assignee_id: int | None
    deal_id: int | None
    due_at: str | None
    automation: NotRequired[str]
    call_key: NotRequired[str]
    conversation_id: NotRequired[int]
    task: TaskSnapshot


class TaskChanged(TypedDict):
    """Each changed field as ``[before, after]``; ``reason`` when the system changed it."""

    task_id: int
    title: NotRequired[list[str]]
    assignee_id: NotRequired[list[int | None]]
    due_at: NotRequired[list[str | None]]
    status: NotRequired[list[str]]
    reason: NotRequired[str]
    task: TaskSnapshot


class TaskCompleted(TypedDict):
    task_id: int
    deal_id: int | None
    assignee_id: int | None
    task: TaskSnapshot


class TaskReopened(TypedDict):
    task_id: int
    task: TaskSnapshot


class TaskOverdue(TypedDict):
    task_id: int
    assignee_id: int | None
    deal_id: int | None
    conversation_id: int | None
    task: TaskSnapshot


class CallEvent(TypedDict):
    """``task_id``: the call back of a missed call; ``previous_disposition``: what a call
    stored as missed was before a later record said it was answered."""

    call_id: int
    call_key: str
    contact_id: int
    conversation_id: int
    direction: str
    caller: str
    disposition: str
    manager_id: int | None
    duration_seconds: int
    task_id: NotRequired[int | None]
    previous_disposition: NotRequired[str]
    call: CallSnapshot


class ManagerCreated(TypedDict):
    manager_id: int
    role: str
    team_id: int | None


class ManagerChanged(TypedDict):
    """The changed fields' new values (never a password: ``password_changed`` says so)."""

    manager_id: int
    team_id: NotRequired[int | None]
    name: NotRequired[str]
    capacity: NotRequired[int]
    active: NotRequired[bool]
    role: NotRequired[str]
    password_changed: NotRequired[bool]


class RoutingChanged(TypedDict):
    version: int


EVENT_DATA: dict[str, Any] = {
    "contact.created": ContactCreated,
    "contact.merged": ContactMerged,
    "contact.merge_undone": ContactMerged,
    "identity.unreachable": IdentityUnreachable,
    "identity.unreachable_cleared": IdentityUnreachableCleared,
    "conversation.created": ConversationCreated,
    "conversation.reassigned": ConversationReassigned,
    "conversation.closed": ConversationStatusChanged,
    "conversation.reopened": ConversationStatusChanged,
    "conversation.sla_breached": ConversationSlaBreached,
    "message.created": MessageCreated,
    "message.edited": MessageEdited,
    "message.status_changed": MessageStatusChanged,
    "note.created": NoteCreated,
    "deal.created": DealCreated,
    "deal.stage_changed": DealStageChanged,
    "deal.updated": DealUpdated,
    "deal.won": DealClosed,
    "deal.lost": DealClosed,
    "deal.head_notified": DealHeadNotified,
    "task.created": TaskCreated,
    "task.changed": TaskChanged,
    "task.reassigned": TaskChanged,
    "task.completed": TaskCompleted,
    "task.reopened": TaskReopened,
    "task.overdue": TaskOverdue,
    "call.missed": CallEvent,
    "call.ended": CallEvent,
    "manager.created": ManagerCreated,
    "manager.changed": ManagerChanged,
    "routing.changed": RoutingChanged,
}
