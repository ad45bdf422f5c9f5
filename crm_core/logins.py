"""Managers logging in: argon2 password checks and the browser sessions they open.

A session is a random cookie value the browser keeps; the database keeps only its
SHA-256, so a leaked database does not log anyone in. Each session carries its own
CSRF token, which the inbox sends back in a header on every change it makes.
"""

from __future__ import annotations

import functools
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.access import Viewer, viewer_for
from crm_core.identities import normalize_email
from crm_core.journal import Journal
from crm_core.models import Manager, ManagerSession
from crm_core.people import set_password, token_digest

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Checked when the email is unknown, so that a wrong email costs as long as a wrong
    password. Made on the first check, not at import (an argon2 hash costs a good part of a
    second on a busy machine, and every CLI command would pay it); each check asks for it
    before it looks at the email, so the first check costs the same either way."""
    return _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True, slots=True)
class OpenedSession:
    cookie: str
    csrf_token: str
    viewer: Viewer
    expires_at: datetime


def login_key(email: str) -> str:
    """The one form of a typed email that both the login brake and the lookup use: the
    normalized address (``BORIS@sec。example.`` is ``boris@sec.example``), or, for text
    that is no address, its NFKC form, trimmed and lower-cased."""
    try:
        return normalize_email(email)
    except ValueError:
        return unicodedata.normalize("NFKC", email).strip().lower()


def check_password(session: Session, address: str, password: str) -> int | None:
    """The id of the active manager with this address (a :func:`login_key`) and password,
    or None (the same argon2 cost either way). Read-only: run it off the writer."""
    dummy = _dummy_hash()
    manager = session.scalar(select(Manager).where(Manager.email == address)) if address else None
    stored = manager.password_hash if manager is not None else None
    try:
        _hasher.verify(stored or dummy, password)
    except (VerificationError, InvalidHashError):
        return None
    if manager is None or stored is None or not manager.active:
        return None
    return manager.id


@dataclass(frozen=True, slots=True)
class PasswordCheck:
    """A manager's email and, when the password given was right, the hash it matched."""

    email: str
    matched_hash: str | None


def check_own_password(session: Session, manager_id: int, password: str) -> PasswordCheck:
    """Whether ``password`` is the manager's (the same argon2 cost either way). Read-only."""
    dummy = _dummy_hash()
    row = session.execute(
        select(Manager.email, Manager.password_hash).where(Manager.id == manager_id)
    ).one()
    try:
        _hasher.verify(row.password_hash or dummy, password)
    except (VerificationError, InvalidHashError):
        return PasswordCheck(row.email, None)
    return PasswordCheck(row.email, row.password_hash)


def change_own_password(
    session: Session,
    journal: Journal,
    manager_id: int,
    password: str,
    *,
    checked_hash: str,
    keep_cookie: str | None,
) -> bool:
    """The manager's new password, if the one they proved (``checked_hash``) is still in
    force; their other sessions end and their API tokens are revoked. False otherwise."""
    manager = session.get(Manager, manager_id, with_for_update=True)
    if manager is None or manager.password_hash != checked_hash:
        return False
    set_password(session, journal, manager, password, keep_cookie)
    journal.recorded_and_emitted(
        "manager.changed",
        "manager",
        manager_id,
        {"manager_id": manager_id, "password_changed": True},
        event_key=journal.occurrence(manager_id),
    )
    return True


def open_session(
    session: Session, journal: Journal, manager_id: int, lifetime: timedelta
) -> OpenedSession | None:
    """A new session for the manager, or None if they were deactivated meanwhile."""
    viewer = viewer_for(session, manager_id, f"manager:{manager_id}")
    if viewer is None:
        return None
    cookie = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = journal.now + lifetime
    row = ManagerSession(
        token_sha256=token_digest(cookie),
        manager_id=manager_id,
        csrf_token=csrf,
        created_at=journal.now,
        expires_at=expires,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    journal.record("manager.logged_in", "manager", manager_id, {"session_id": row.id})
    return OpenedSession(cookie, csrf, viewer, expires)


def session_viewer(session: Session, cookie: str, now: datetime) -> tuple[Viewer, str] | None:
    """The viewer and CSRF token of a live session, or None when it is unknown or over."""
    row = session.execute(
        select(ManagerSession.manager_id, ManagerSession.csrf_token).where(
            ManagerSession.token_sha256 == token_digest(cookie),
            ManagerSession.revoked_at.is_(None),
            ManagerSession.expires_at > now,
        )
    ).first()
    if row is None:
        return None
    viewer = viewer_for(session, row.manager_id, f"manager:{row.manager_id}")
    return (viewer, row.csrf_token) if viewer is not None else None


def close_session(session: Session, journal: Journal, cookie: str) -> None:
    session.execute(
        update(ManagerSession)
        .where(
            ManagerSession.token_sha256 == token_digest(cookie),
            ManagerSession.revoked_at.is_(None),
        )
        .values(revoked_at=journal.now)
    )
