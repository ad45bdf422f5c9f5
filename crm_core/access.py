"""Who may see what, as conditions the queries themselves carry.

A *manager* sees their own and unassigned conversations, deals and tasks; when their team
shares its work, the whole team's too. A *head of sales* and an *admin* see everything.
An integration's API token that speaks for nobody sees the whole CRM (it is the company's
own system) but is not a person: it cannot take conversations or administer people.

Every list and detail query adds :func:`conversation_scope` (or its sibling) to its WHERE
clause, so a row outside the viewer's scope is simply not found: the API answers 404, not
403, and does not reveal that the id exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, exists, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute, Session

from crm_core.enums import Role
from crm_core.models import Contact, Conversation, Deal, Manager, Task, Team


@dataclass(frozen=True, slots=True)
class Viewer:
    """The person (or integration) a request speaks for."""

    actor: str
    manager_id: int | None = None
    role: Role | None = None  # None: an integration token that speaks for nobody
    team_id: int | None = None
    team_shared: bool = False
    name: str = ""

    @property
    def sees_all(self) -> bool:
        return self.role is None or self.role in (Role.HEAD, Role.ADMIN)

    @property
    def is_person(self) -> bool:
        return self.manager_id is not None

    @property
    def can_reassign(self) -> bool:
        """Heads and admins hand conversations and deals to anyone."""
        return self.role in (Role.HEAD, Role.ADMIN) or self.role is None

    @property
    def is_admin(self) -> bool:
        """Configures channels, routing, webhooks and people (integrations may too)."""
        return self.role in (Role.ADMIN, None)


INTEGRATION = Viewer(actor="system")


def viewer_for(session: Session, manager_id: int, actor: str) -> Viewer | None:
    """The viewer for an active manager, with their team's visibility setting."""
    row = session.execute(
        select(Manager.role, Manager.team_id, Manager.active, Manager.name, Team.shared_work)
        .outerjoin(Team, Team.id == Manager.team_id)
        .where(Manager.id == manager_id)
    ).first()
    if row is None or not row.active:
        return None
    return Viewer(
        actor=actor,
        manager_id=manager_id,
        role=Role(row.role),
        team_id=row.team_id,
        team_shared=bool(row.shared_work),
        name=row.name,
    )


def _owned(viewer: Viewer, column: InstrumentedAttribute[int | None]) -> ColumnElement[bool]:
    """Own, unassigned, or (shared work) a teammate's."""
    mine = or_(column == viewer.manager_id, column.is_(None))
    if viewer.team_shared and viewer.team_id is not None:
        teammates = select(Manager.id).where(Manager.team_id == viewer.team_id)
        return or_(mine, column.in_(teammates.scalar_subquery()))
    return mine


def conversation_scope(viewer: Viewer) -> ColumnElement[bool]:
    if viewer.sees_all:
        return true()
    condition = _owned(viewer, Conversation.assignee_id)
    if viewer.team_shared and viewer.team_id is not None:
        condition = or_(condition, Conversation.team_id == viewer.team_id)
    return condition


def deal_scope(viewer: Viewer) -> ColumnElement[bool]:
    return true() if viewer.sees_all else _owned(viewer, Deal.owner_id)


def task_scope(viewer: Viewer) -> ColumnElement[bool]:
    return true() if viewer.sees_all else _owned(viewer, Task.assignee_id)


def contact_scope(viewer: Viewer) -> ColumnElement[bool]:
    """A contact the viewer (or, in shared work, a teammate) owns, or one of whose
    conversations or deals the viewer may see."""
    if viewer.sees_all:
        return true()
    return or_(
        and_(Contact.owner_id.is_not(None), _owned(viewer, Contact.owner_id)),
        exists().where(and_(Conversation.contact_id == Contact.id, conversation_scope(viewer))),
        exists().where(and_(Deal.contact_id == Contact.id, deal_scope(viewer))),
    )


def sees_conversation(session: Session, viewer: Viewer, conversation_id: int) -> bool:
    found = session.scalar(
        select(Conversation.id).where(
            Conversation.id == conversation_id, conversation_scope(viewer)
        )
    )
    return found is not None


def sees_deal(session: Session, viewer: Viewer, deal_id: int) -> bool:
    return session.scalar(select(Deal.id).where(Deal.id == deal_id, deal_scope(viewer))) is not None


def sees_task(session: Session, viewer: Viewer, task_id: int) -> bool:
    return session.scalar(select(Task.id).where(Task.id == task_id, task_scope(viewer))) is not None


def sees_contact(session: Session, viewer: Viewer, contact_id: int) -> bool:
    found = session.scalar(
        select(Contact.id).where(Contact.id == contact_id, contact_scope(viewer))
    )
    return found is not None
