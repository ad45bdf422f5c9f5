"""Managers, teams and the API tokens integrations use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column

from crm_core.models.base import Base, Id, UTCDateTime


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    # Shared work: every manager of the team sees the team's conversations and deals.
    # Competing work (the default): a manager sees only own and unassigned ones.
    shared_work: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Manager(Base):
    __tablename__ = "managers"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    team_id: Mapped[int | None] = mapped_column(Id, ForeignKey("teams.id"), index=True)
    capacity: Mapped[int] = mapped_column(Integer, default=20)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    locale: Mapped[str] = mapped_column(String(8), default="ru")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    last_assigned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiToken(Base):
    """An integration's bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    manager_id: Mapped[int | None] = mapped_column(Id, ForeignKey("managers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SetupToken(Base):
    """The first run's one-time link to create the first admin; only its SHA-256 is kept."""

    __tablename__ = "setup_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ManagerSession(Base):
    """A browser login: the cookie's SHA-256 (never the cookie) and its CSRF token."""

    __tablename__ = "manager_sessions"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    manager_id: Mapped[int] = mapped_column(Id, ForeignKey("managers.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConversationRead(Base):
    """How far a manager has read a conversation: the unread count's other half."""

    __tablename__ = "conversation_reads"

    manager_id: Mapped[int] = mapped_column(Id, ForeignKey("managers.id"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        Id, ForeignKey("conversations.id"), primary_key=True
    )
    last_read_message_id: Mapped[int] = mapped_column(Id)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime())
