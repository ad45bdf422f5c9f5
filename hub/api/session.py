"""Logging in and out of the inbox, and who am I: ``/api/v1/session``, ``/api/v1/me``."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm_core.access import Viewer
from crm_core.journal import Journal
from crm_core.logins import OpenedSession, check_password, close_session, open_session
from crm_core.models import Manager
from hub.api.auth import VIEWER, person
from hub.api.bodies import parse_body
from hub.api.errors import ApiError
from hub.keys import CLOCK, DATABASE, SETTINGS
from hub.sessions import (
    LOGIN_LIMITER,
    SESSION_COOKIE,
    clear_session_cookie,
    cookie_session,
    set_session_cookie,
)

routes = web.RouteTableDef()


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    locale: Literal["ru", "en"]


@routes.post("/api/v1/session")
async def post_session(request: web.Request) -> web.Response:
    login = await parse_body(request, Login)
    app = request.app
    now = app[CLOCK].now()
    limiter = app[LOGIN_LIMITER]
    email_key = "email:" + login.email.strip().lower()
    keys = [(email_key, 1), ("addr:" + (request.remote or "?"), 4)]
    wait = limiter.retry_after(keys, now)
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", f"too many failed logins; try again in {wait} s"
        ).with_headers({"Retry-After": str(wait)})
    manager_id = await app[DATABASE].read(
        lambda session: check_password(session, login.email, login.password)
    )
    if manager_id is None:
        limiter.failed(keys, now)
        raise ApiError(401, "unauthorized", "the email or the password is wrong")
    limiter.succeeded(email_key)
    lifetime = timedelta(hours=app[SETTINGS].session_hours)

    def work(session: Session) -> tuple[OpenedSession, str, str] | None:
        journal = Journal(f"manager:{manager_id}", app[CLOCK].now())
        opened = open_session(session, journal, manager_id, lifetime)
        journal.flush(session)
        return (opened, *_email_locale(session, opened.viewer)) if opened else None

    found = await app[DATABASE].write(work)
    if found is None:
        raise ApiError(401, "unauthorized", "the email or the password is wrong")
    opened, email, locale = found
    response = web.json_response(_me(opened.viewer, opened.csrf_token, email, locale))
    set_session_cookie(request, response, opened.cookie, opened.expires_at)
    return response


@routes.delete("/api/v1/session")
async def delete_session(request: web.Request) -> web.Response:
    viewer = request[VIEWER]
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:

        def work(session: Session) -> None:
            journal = Journal(viewer.actor, request.app[CLOCK].now())
            close_session(session, journal, cookie)
            journal.flush(session)

        await request.app[DATABASE].write(work)
    response = web.Response(status=204)
    clear_session_cookie(response)
    return response


@routes.get("/api/v1/me")
async def get_me(request: web.Request) -> web.Response:
    viewer = person(request)
    found = await cookie_session(request) if SESSION_COOKIE in request.cookies else None
    email, locale = await request.app[DATABASE].read(lambda s: _email_locale(s, viewer))
    return web.json_response(_me(viewer, found[1] if found else None, email, locale))


@routes.patch("/api/v1/me")
async def patch_me(request: web.Request) -> web.Response:
    viewer = person(request)
    change = await parse_body(request, Preferences)

    def work(session: Session) -> tuple[str, str]:
        session.execute(
            update(Manager).where(Manager.id == viewer.manager_id).values(locale=change.locale)
        )
        return _email_locale(session, viewer)

    email, locale = await request.app[DATABASE].write(work)
    return web.json_response(_me(viewer, None, email, locale))


def _email_locale(session: Session, viewer: Viewer) -> tuple[str, str]:
    manager = session.get(Manager, viewer.manager_id)
    assert manager is not None
    return manager.email, manager.locale


def _me(
    viewer: Viewer, csrf: str | None, email: str, locale: str | None = None
) -> dict[str, object]:
    manager = {
        "id": viewer.manager_id,
        "name": viewer.name,
        "email": email,
        "role": viewer.role.value if viewer.role else None,
        "team_id": viewer.team_id,
        "team_shared": viewer.team_shared,
    }
    if locale is not None:
        manager["locale"] = locale
    return {"manager": manager, "csrf_token": csrf}
