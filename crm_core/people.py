"""Managers, teams and API tokens: created by the CLI and the admin API."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.access import Viewer, viewer_for
from crm_core.enums import Role
from crm_core.identities import normalize_email
from crm_core.journal import Journal
from crm_core.models import ApiToken, Manager, Team

_hasher = PasswordHasher()
TOKEN_PREFIX = "omh_"  # noqa: S105 (a visible prefix, not a secret)


@dataclass(frozen=True, slots=True)
class TokenOwner:
    """Who an API token speaks for."""

    token_id: int
    name: str
    manager_id: int | None

    @property
    def actor(self) -> str:
        return f"api_token:{self.token_id}"


def head_of_sales(session: Session) -> int | None:
    """The active head of sales who gets escalations (the first, if there are several)."""
    return session.scalar(
        select(Manager.id)
        .where(Manager.role == Role.HEAD, Manager.active.is_(True))
        .order_by(Manager.id)
        .limit(1)
    )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def team_named(session: Session, name: str, journal: Journal) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        team = Team(name=name, created_at=journal.now)
        session.add(team)
        session.flush()
        journal.record("team.created", "team", team.id, {"name": name})
    return team


def create_manager(
    session: Session,
    journal: Journal,
    *,
    email: str,
    name: str,
    role: Role = Role.MANAGER,
    team: str | None = None,
    capacity: int = 20,
    password: str | None = None,
) -> Manager:
    address = normalize_email(email)
    if session.scalar(select(Manager.id).where(Manager.email == address)) is not None:
        raise ValueError(f"a manager with the email {address} already exists")
    team_id = (team_named(session, team, journal)).id if team else None
    manager = Manager(
        email=address,
        name=name,
        role=role.value,
        team_id=team_id,
        capacity=capacity,
        active=True,
        password_hash=hash_password(password) if password else None,
        created_at=journal.now,
    )
    session.add(manager)
    session.flush()
    journal.recorded_and_emitted(
        "manager.created",
        "manager",
        manager.id,
        {"manager_id": manager.id, "role": role.value, "team_id": team_id},
    )
    return manager


def create_api_token(
    session: Session, journal: Journal, name: str, manager_id: int | None = None
) -> tuple[ApiToken, str]:
    """A new token; the plain text is returned once and never stored."""
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        name=name,
        token_sha256=token_digest(plain),
        manager_id=manager_id,
        created_at=journal.now,
    )
    session.add(token)
    session.flush()
    journal.record("api_token.created", "api_token", token.id, {"name": name})
    return token, plain


def token_owner(session: Session, plain: str) -> TokenOwner | None:
    """The live token matching ``plain``; looked up by its SHA-256, never by the secret."""
    row = (
        session.execute(
            select(ApiToken.id, ApiToken.name, ApiToken.manager_id).where(
                ApiToken.token_sha256 == token_digest(plain), ApiToken.revoked_at.is_(None)
            )
        )
    ).first()
    return TokenOwner(row[0], row[1], row[2]) if row else None


def token_viewer(session: Session, plain: str) -> Viewer | None:
    """Who a live token speaks for: its manager (with their role and team) or, for a token
    that names no manager, the integration."""
    owner = token_owner(session, plain)
    if owner is None:
        return None
    if owner.manager_id is None:
        return Viewer(actor=owner.actor, name=owner.name)
    return viewer_for(session, owner.manager_id, owner.actor)


@dataclass(frozen=True, slots=True)
class ManagerChange:
    """What an admin changes about a manager; None leaves a field as it is."""

    name: str | None = None
    role: Role | None = None
    team: str | None = None
    capacity: int | None = None
    active: bool | None = None
    password: str | None = None


def change_manager(
    session: Session, journal: Journal, manager_id: int, change: ManagerChange
) -> Manager:
    manager = session.get(Manager, manager_id)
    if manager is None:
        raise LookupError(f"manager {manager_id} not found")
    changes: dict[str, object] = {}
    if change.team is not None:
        manager.team_id = team_named(session, change.team, journal).id
        changes["team_id"] = manager.team_id
    for name in ("name", "capacity", "active"):
        value = getattr(change, name)
        if value is not None:
            setattr(manager, name, value)
            changes[name] = value
    if change.role is not None:
        manager.role = change.role.value
        changes["role"] = change.role.value
    if change.password is not None:
        manager.password_hash = hash_password(change.password)
        changes["password_changed"] = True  # never the password, nor its hash
    session.flush()
    journal.recorded_and_emitted("manager.changed", "manager", manager.id, changes)
    return manager


def set_team_sharing(session: Session, journal: Journal, team_id: int, shared: bool) -> Team:
    """Shared work: the team's managers see each other's conversations and deals."""
    team = session.get(Team, team_id)
    if team is None:
        raise LookupError(f"team {team_id} not found")
    team.shared_work = shared
    journal.record("team.changed", "team", team.id, {"shared_work": shared})
    return team
