"""Closed vocabularies of the model, shared by the ORM, the API and connectors."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    API = "api"
    TELEGRAM = "telegram"
    EMAIL = "email"
    PHONE = "phone"
    SITE_CHAT = "site_chat"
    FORM = "form"
    AD_LEAD = "ad_lead"


class IdentityKind(StrEnum):
    PHONE = "phone"
    EMAIL = "email"
    TELEGRAM = "telegram"
    SITE_VISITOR = "site_visitor"
    VK = "vk"
    WHATSAPP = "whatsapp"


class Segment(StrEnum):
    B2C = "B2C"
    B2B = "B2B"
    B2G = "B2G"


class ConversationStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    CLOSED = "closed"


class Direction(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"
    NOTE = "note"  # a manager's internal note: never sent to the client


class AuthorKind(StrEnum):
    CONTACT = "contact"
    MANAGER = "manager"
    SYSTEM = "system"


class DeliveryStatus(StrEnum):
    RECEIVED = "received"
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"  # the client has seen it (site chat)
    FAILED = "failed"


class StageKind(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class TaskKind(StrEnum):
    CALL = "call"
    MEETING = "meeting"
    NEEDS = "needs"
    PROPOSAL = "proposal"
    FOLLOW_UP = "follow_up"
    CALL_BACK = "call_back"
    OTHER = "other"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Role(StrEnum):
    MANAGER = "manager"
    HEAD = "head"
    ADMIN = "admin"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
    EXPIRED = "expired"  # outlived its use (a webhook past the retention): never tried again


class CallDisposition(StrEnum):
    """How a phone call ended; every one but ``answered`` leaves a client to call back."""

    ANSWERED = "answered"
    MISSED = "missed"
    BUSY = "busy"
    REJECTED = "rejected"
    FAILED = "failed"
    VOICEMAIL = "voicemail"
