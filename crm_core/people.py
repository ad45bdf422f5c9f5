"""Managers, teams and API tokens: created by the CLI and the admin API."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.access import Viewer, viewer_for
from crm_core.contracts import wire_bytes
from crm_core.enums import Role
from crm_core.identities import normalize_email
from crm_core.journal import Journal
from crm_core.models import ApiToken, Manager, ManagerSession, Team

_hasher = PasswordHasher()
TOKEN_PREFIX = "omh_"  # noqa: S105 (a visible prefix, not a secret)
PASSWORD_MIN_LENGTH = 10


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
    return hashlib.sha256(wire_bytes(token)).hexdigest()  # a header's bytes may be anything


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
        set_password(session, journal, manager, change.password)  # a reset ends every login
        changes["password_changed"] = True  # never the password, nor its hash
    elif change.active is False:
        end_sessions(session, journal, manager.id)
    session.flush()
    journal.recorded_and_emitted(
        "manager.changed",
        "manager",
        manager.id,
        {"manager_id": manager.id, **changes},
        event_key=journal.occurrence(manager.id),
    )
    return manager


def set_password(
    session: Session,
    journal: Journal,
    manager: Manager,
    password: str,
    keep_cookie: str | None = None,
) -> None:
    """A new password: every session but ``keep_cookie``'s ends, and every API token that
    speaks for the manager is revoked (whoever knew the old password may have made one)."""
    manager.password_hash = hash_password(password)
    end_sessions(session, journal, manager.id, keep_cookie)
    revoked = session.scalars(
        update(ApiToken)
        .where(ApiToken.manager_id == manager.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=journal.now)
        .returning(ApiToken.id)
    ).all()
    for token_id in revoked:
        journal.record("api_token.revoked", "api_token", token_id, {"manager_id": manager.id})


def end_sessions(
    session: Session, journal: Journal, manager_id: int, keep_cookie: str | None = None
) -> None:
    """End the manager's live sessions, all but ``keep_cookie``'s when it is given."""
    live = [ManagerSession.manager_id == manager_id, ManagerSession.revoked_at.is_(None)]
    if keep_cookie is not None:
        live.append(ManagerSession.token_sha256 != token_digest(keep_cookie))
    ended = session.scalars(
        update(ManagerSession)
        .where(*live)
        .values(revoked_at=journal.now)
        .returning(ManagerSession.id)
    ).all()
    if ended:
        journal.record("manager.sessions_ended", "manager", manager_id, {"session_ids": ended})


def set_team_sharing(session: Session, journal: Journal, team_id: int, shared: bool) -> Team:
    """Shared work: the team's managers see each other's conversations and deals."""
    team = session.get(Team, team_id)
    if team is None:
        raise LookupError(f"team {team_id} not found")
    team.shared_work = shared
    journal.record("team.changed", "team", team.id, {"shared_work": shared})
    return team
