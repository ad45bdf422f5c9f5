"""The ORM tables as Core :class:`Table` objects, for set-based statements on hot paths."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from crm_core import models


def _table(model: type[models.Base]) -> Table:
    return cast(Table, model.__table__)


def insert_new(session: Session, table: Table, keys: Sequence[str]) -> Any:
    """An INSERT of ``table`` that skips a row whose ``keys`` are taken (ON CONFLICT DO
    NOTHING, in the session's dialect)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table).on_conflict_do_nothing(index_elements=list(keys))


channel_accounts = _table(models.ChannelAccount)
contacts = _table(models.Contact)
identities = _table(models.ContactIdentity)
touches = _table(models.Touch)
conversations = _table(models.Conversation)
messages = _table(models.Message)
managers = _table(models.Manager)
teams = _table(models.Team)
funnels = _table(models.Funnel)
stages = _table(models.Stage)
deals = _table(models.Deal)
stage_changes = _table(models.DealStageChange)
tasks = _table(models.Task)
audit_log = _table(models.AuditEntry)
outbox = _table(models.OutboxMessage)
checkpoints = _table(models.ChannelCheckpoint)
timers = _table(models.Timer)
parked_items = _table(models.ParkedItem)
site_visitors = _table(models.SiteVisitor)
site_uploads = _table(models.SiteUpload)
weekly_letters = _table(models.WeeklyLetter)
