"""The ORM tables of the unified model (SQLAlchemy 2)."""

from crm_core.models.base import Base, UTCDateTime
from crm_core.models.calls import Call
from crm_core.models.configuration import RoutingDocument
from crm_core.models.contacts import Contact, ContactIdentity, ContactMerge, Touch
from crm_core.models.conversations import (
    ChannelAccount,
    ChannelCheckpoint,
    Conversation,
    Message,
    MessageRevision,
)
from crm_core.models.deals import Deal, DealStageChange, Funnel, Stage, Task
from crm_core.models.journal import AuditEntry, OutboxMessage
from crm_core.models.letters import WeeklyLetter
from crm_core.models.parked import ParkedItem
from crm_core.models.people import (
    ApiToken,
    ConversationRead,
    Manager,
    ManagerSession,
    SetupToken,
    Team,
)
from crm_core.models.rejected import RejectedHook
from crm_core.models.site_chat import SiteSession, SiteUpload, SiteVisitor
from crm_core.models.timers import Timer
from crm_core.models.webhooks import WebhookDelivery, WebhookSubscription

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Base",
    "Call",
    "ChannelAccount",
    "ChannelCheckpoint",
    "Contact",
    "ContactIdentity",
    "ContactMerge",
    "Conversation",
    "ConversationRead",
    "Deal",
    "DealStageChange",
    "Funnel",
    "Manager",
    "ManagerSession",
    "Message",
    "MessageRevision",
    "OutboxMessage",
    "ParkedItem",
    "RejectedHook",
    "RoutingDocument",
    "SetupToken",
    "SiteSession",
    "SiteUpload",
    "SiteVisitor",
    "Stage",
    "Task",
    "Team",
    "Timer",
    "Touch",
    "UTCDateTime",
    "WebhookDelivery",
    "WebhookSubscription",
    "WeeklyLetter",
]
