"""People, as the admin configures them: managers (role, team, password, active) and
whether a team shares its work. Anyone logged in may list them (to transfer to)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.access import sees_contact
from crm_core.channel_state import clear_unreachable
from crm_core.enums import Role
from crm_core.identities import InvalidIdentityError
from crm_core.journal import Journal
from crm_core.models import Team
from crm_core.people import (
    PASSWORD_MIN_LENGTH,
    ManagerChange,
    change_manager,
    create_manager,
    set_team_sharing,
)
from crm_core.queries import identity_row
from hub.api.auth import VIEWER, require_admin
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.ids import id_schema, path_id
from hub.keys import CLOCK, DATABASE, TOKENS

routes = web.RouteTableDef()
_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
# A password is kept as typed: spaces are part of it, as they are when logging in.
Password = Annotated[
    str,
    StringConstraints(strip_whitespace=False, min_length=PASSWORD_MIN_LENGTH, max_length=1024),
]


class NewManager(BaseModel):
    model_config = _STRICT
    email: str = Field(min_length=3, max_length=320)
    name: str = Field(min_length=1, max_length=200)
    role: Role = Role.MANAGER
    team: str | None = Field(default=None, min_length=1, max_length=120)
    capacity: int = Field(default=20, ge=0, le=10_000)
    password: Password | None = None


class ManagerPatch(BaseModel):
    model_config = _STRICT
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    team: str | None = Field(default=None, min_length=1, max_length=120)
    capacity: int | None = Field(default=None, ge=0, le=10_000)
    active: bool | None = Field(
        default=None, description="false ends the manager's sessions at once"
    )
    password: Password | None = Field(
        default=None,
        description="A reset: every session of the manager ends and every API token "
        "that speaks for them is revoked.",
    )


class TeamPatch(BaseModel):
    model_config = _STRICT
    shared_work: bool


def _manager(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "role": row.role,
        "team_id": row.team_id,
        "capacity": row.capacity,
        "active": row.active,
    }


async def _admin_write(
    request: web.Request, act: Callable[[Session, Journal], dict[str, Any]], status: int = 200
) -> web.Response:
    viewer = require_admin(request)
    clock = request.app[CLOCK]

    def work(session: Session) -> dict[str, Any]:
        journal = Journal(viewer.actor, clock.now())
        result = act(session, journal)
        journal.flush(session)
        return result

    try:
        result = await request.app[DATABASE].write(work)
    except LookupError as exc:
        raise not_found(str(exc).split(" ", 1)[0]) from None
    except (InvalidIdentityError, ValueError) as exc:
        status = 409 if "already exists" in str(exc) else 400
        raise ApiError(status, "invalid_body", str(exc)) from None
    await request.app[TOKENS].forget()  # a role or an active flag changed: re-read the tokens
    return web.json_response(result, status=status)


@routes.post("/api/v1/managers")
async def post_manager(request: web.Request) -> web.Response:
    body = await parse_body(request, NewManager)
    return await _admin_write(
        request,
        lambda s, j: _manager(
            create_manager(
                s,
                j,
                email=body.email,
                name=body.name,
                role=body.role,
                team=body.team,
                capacity=body.capacity,
                password=body.password,
            )
        ),
        status=201,
    )


@routes.patch("/api/v1/managers/{id}")
async def patch_manager(request: web.Request) -> web.Response:
    manager_id = path_id(request)
    body = await parse_body(request, ManagerPatch)
    change = ManagerChange(**body.model_dump())
    return await _admin_write(
        request, lambda s, j: _manager(change_manager(s, j, manager_id, change))
    )


@routes.get("/api/v1/teams")
async def get_teams(request: web.Request) -> web.Response:
    def work(session: Session) -> list[dict[str, Any]]:
        return [
            {"id": t.id, "name": t.name, "shared_work": t.shared_work}
            for t in session.scalars(select(Team).order_by(Team.name))
        ]

    return web.json_response({"items": await request.app[DATABASE].read(work)})


@routes.patch("/api/v1/teams/{id}")
async def patch_team(request: web.Request) -> web.Response:
    team_id = path_id(request)
    body = await parse_body(request, TeamPatch)

    def act(session: Session, journal: Journal) -> dict[str, Any]:
        team = set_team_sharing(session, journal, team_id, body.shared_work)
        return {"id": team.id, "name": team.name, "shared_work": team.shared_work}

    return await _admin_write(request, act)


@routes.delete("/api/v1/contacts/{id}/identities/{identity_id}/unreachable")
async def clear_identity_unreachable(request: web.Request) -> web.Response:
    """The client can be reached by this identity again: replies may use it. Anyone who
    sees the contact may (as for its timeline); the change is in the audit log."""
    viewer = request[VIEWER]
    contact_id = path_id(request)
    identity_id = path_id(request, "identity_id")
    clock = request.app[CLOCK]

    def work(session: Session) -> dict[str, Any] | None:
        if not sees_contact(session, viewer, contact_id):
            return None
        journal = Journal(viewer.actor, clock.now())
        row = clear_unreachable(session, journal, contact_id, identity_id)
        journal.flush(session)
        return None if row is None else identity_row(row)

    found = await request.app[DATABASE].write(work)
    if found is None:
        raise not_found("identity")
    return web.json_response(found)


def identity_schemas() -> dict[str, Any]:
    """The OpenAPI schema of a contact's identity (in contacts and the contact card)."""
    when = {"type": "string", "format": "date-time"}
    return {
        "Identity": {
            "type": "object",
            "required": ["id", "kind", "value", "unreachable_at", "unreachable_reason"],
            "properties": {
                "id": id_schema(),
                "kind": {"type": "string", "description": "phone, email, telegram, ..."},
                "value": {"type": "string"},
                "unreachable_at": {
                    "anyOf": [when, {"type": "null"}],
                    "description": "When the hub learned it cannot reach the client by it "
                    "(the client blocked the bot, the address bounced); null: reachable.",
                },
                "unreachable_reason": {"type": ["string", "null"]},
            },
        }
    }


def identity_paths() -> dict[str, Any]:
    """The OpenAPI entry of clearing an identity's unreachable mark."""
    identity = {"$ref": "#/components/schemas/Identity"}
    error = {"$ref": "#/components/schemas/Error"}
    return {
        "/api/v1/contacts/{id}/identities/{identity_id}/unreachable": {
            "delete": {
                "summary": "Clear the unreachable mark of a contact's identity: replies and "
                "the reply box may use it again (journaled as identity.unreachable_cleared).",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": id_schema()},
                    {
                        "name": "identity_id",
                        "in": "path",
                        "required": True,
                        "schema": id_schema(),
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The identity, reachable.",
                        "content": {"application/json": {"schema": identity}},
                    },
                    "404": {
                        "description": "No such contact the caller may see, or no such "
                        "identity of it.",
                        "content": {"application/json": {"schema": error}},
                    },
                },
            }
        }
    }
