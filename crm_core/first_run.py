"""The first run: a one-time link that creates the first admin.

While no active admin exists, a starting hub issues a setup token (random, kept only as
its SHA-256, valid for a limited time) and says the link. Opening it and sending a name,
an email and a password creates the first admin, once: the token is spent in the same
transaction, and a second admin cannot be made this way (``omnihub create-manager`` and
the people API remain the ways to add people). A new start issues a new token and the
older ones stop working.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import Manager, SetupToken
from crm_core.people import create_manager, token_digest


@dataclass(frozen=True, slots=True)
class FirstRunError(Exception):
    """Why the first admin was not created: ``code`` for the API, ``message`` for people."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message


def has_admin(session: Session) -> bool:
    found = session.scalar(
        select(Manager.id).where(Manager.role == Role.ADMIN.value, Manager.active).limit(1)
    )
    return found is not None


def issue_setup_token(session: Session, now: datetime, valid_for: timedelta) -> str | None:
    """A new one-time token (the plain text, to put in the link) when the hub has no
    admin; None when it has one. Earlier tokens stop working."""
    if has_admin(session):
        return None
    session.execute(delete(SetupToken))
    plain = secrets.token_urlsafe(32)
    session.add(
        SetupToken(token_sha256=token_digest(plain), created_at=now, expires_at=now + valid_for)
    )
    return plain


def create_first_admin(
    session: Session, journal: Journal, token: str, *, name: str, email: str, password: str
) -> Manager:
    """Spend ``token`` and create the first admin; raises :class:`FirstRunError`."""
    if has_admin(session):
        raise FirstRunError(409, "already_set_up", "the hub has an admin: log in instead")
    now = journal.now
    spent = session.execute(
        update(SetupToken)
        .where(
            SetupToken.token_sha256 == token_digest(token),
            SetupToken.used_at.is_(None),
            SetupToken.expires_at > now,
        )
        .values(used_at=now)
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise FirstRunError(
            403,
            "setup_link",
            "this setup link is wrong, used or expired: restart the hub for a new one",
        )
    try:
        return create_manager(
            session, journal, email=email, name=name, role=Role.ADMIN, password=password
        )
    except ValueError as exc:  # the address is taken, or not an address
        raise FirstRunError(400, "invalid_body", f"email: {exc}") from None
