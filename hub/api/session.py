"""Logging in and out of the inbox, and who am I: ``/api/v1/session``, ``/api/v1/me``."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from sqlalchemy import update
from sqlalchemy.orm import Session

from crm_core.access import Viewer
from crm_core.first_run import FirstRunError, create_first_admin
from crm_core.journal import Journal
from crm_core.logins import (
    OpenedSession,
    change_own_password,
    check_own_password,
    check_password,
    close_session,
    login_key,
    open_session,
)
from crm_core.models import Manager
from hub.addresses import client_address, networks
from hub.api.auth import VIEWER, person
from hub.api.bodies import parse_body
from hub.api.errors import ApiError
from hub.api.people import Password
from hub.keys import CLOCK, DATABASE, SETTINGS, TOKENS
from hub.sessions import (
    LOGIN_LIMITER,
    SESSION_COOKIE,
    clear_session_cookie,
    cookie_session,
    same_origin,
    set_session_cookie,
)

routes = web.RouteTableDef()


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class Preferences(BaseModel):
    """What a manager changes about themselves: the interface language, their password."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={  # what the validators below check, said to the OpenAPI reader
            "anyOf": [
                {"required": ["locale"], "properties": {"locale": {"type": "string"}}},
                {"required": ["password"], "properties": {"password": {"type": "string"}}},
            ],
            "if": {"required": ["password"], "properties": {"password": {"type": "string"}}},
            "then": {
                "required": ["current_password"],
                "properties": {"current_password": {"type": "string"}},
            },
        },
    )
    locale: Literal["ru", "en"] | None = None
    password: Password | None = Field(
        default=None,
        description="A new password (send current_password too): the manager's other "
        "sessions end and every API token that speaks for them is revoked.",
    )
    current_password: str | None = Field(
        default=None, min_length=1, max_length=1024, validate_default=True
    )

    @field_validator("current_password")
    @classmethod
    def _needed_with_a_password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None and info.data.get("password") is not None:
            raise ValueError("send it to change the password")
        return value

    @model_validator(mode="after")
    def _changes_something(self) -> Preferences:
        if self.locale is None and self.password is None:
            raise ValueError("send locale, or password with current_password")
        return self


@routes.post("/api/v1/session")
async def post_session(request: web.Request) -> web.Response:
    if not same_origin(request):  # login CSRF: another site's page logging us in
        raise ApiError(403, "origin", "log in from the hub's own pages")
    login = await parse_body(request, Login)
    app = request.app
    now = app[CLOCK].now()
    limiter = app[LOGIN_LIMITER]
    address = login_key(login.email)  # one key for the brake and the lookup
    email_key = "email:" + address
    client = client_address(request, networks(app[SETTINGS].trusted_proxies))
    keys = [(email_key, 1), (f"addr:{client or '?'}", 4)]
    wait = await limiter.retry_after(keys, now)
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", f"too many failed logins; try again in {wait} s"
        ).with_headers({"Retry-After": str(wait)})
    manager_id = await app[DATABASE].read(
        lambda session: check_password(session, address, login.password)
    )
    if manager_id is None:
        await limiter.failed(keys, now)
        raise ApiError(401, "unauthorized", "the email or the password is wrong")
    await limiter.succeeded(email_key)
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


class FirstAdmin(BaseModel):
    """The first run's form: the setup link's token and the first admin."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    token: str = Field(min_length=1, max_length=200, description="The link's part after #.")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    password: Password
    locale: Literal["ru", "en"] = "en"


@routes.post("/api/v1/setup")
async def post_setup(request: web.Request) -> web.Response:
    """Create the first admin with the first run's one-time link, and log them in."""
    if not same_origin(request):
        raise ApiError(403, "origin", "set the hub up from its own page")
    form = await parse_body(request, FirstAdmin)
    app = request.app
    lifetime = timedelta(hours=app[SETTINGS].session_hours)

    def work(session: Session) -> tuple[OpenedSession, str]:
        journal = Journal("setup", app[CLOCK].now())
        admin = create_first_admin(
            session,
            journal,
            form.token,
            name=form.name,
            email=form.email,
            password=form.password,
        )
        admin.locale = form.locale
        opened = open_session(session, journal, admin.id, lifetime)
        assert opened is not None  # an active manager, made just now
        journal.flush(session)
        return opened, admin.email

    try:
        opened, email = await app[DATABASE].write(work)
    except FirstRunError as exc:
        raise ApiError(exc.status, exc.code, exc.message) from None
    response = web.json_response(
        _me(opened.viewer, opened.csrf_token, email, form.locale), status=201
    )
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
    checked_hash = None
    if change.password is not None and change.current_password is not None:
        checked_hash = await _proven_password(request, viewer, change.current_password)
    # Changing one's password keeps the session it is changed in (not a token's caller).
    by_cookie = "Authorization" not in request.headers
    keep = request.cookies.get(SESSION_COOKIE) if by_cookie else None

    def work(session: Session) -> tuple[str, str] | None:
        assert viewer.manager_id is not None
        if change.locale is not None:
            session.execute(
                update(Manager).where(Manager.id == viewer.manager_id).values(locale=change.locale)
            )
        if change.password is not None and checked_hash is not None:
            journal = Journal(viewer.actor, request.app[CLOCK].now())
            if not change_own_password(
                session,
                journal,
                viewer.manager_id,
                change.password,
                checked_hash=checked_hash,
                keep_cookie=keep,
            ):
                return None
            journal.flush(session)
        return _email_locale(session, viewer)

    found = await request.app[DATABASE].write(work)
    if found is None:
        raise ApiError(409, "conflict", "the password was changed meanwhile: try again")
    if change.password is not None:
        await request.app[TOKENS].forget()  # the revoked tokens must not outlive the cache
    return web.json_response(_me(viewer, None, *found))


async def _proven_password(request: web.Request, viewer: Viewer, password: str) -> str:
    """The hash ``password`` matched; guessing it is braked as a login is (403, then 429)."""
    app = request.app
    manager_id = viewer.manager_id
    assert manager_id is not None
    check = await app[DATABASE].read(lambda s: check_own_password(s, manager_id, password))
    limiter, now = app[LOGIN_LIMITER], app[CLOCK].now()
    keys = [("email:" + check.email, 1)]
    wait = await limiter.retry_after(keys, now)
    if wait is not None:
        raise ApiError(
            429, "too_many_attempts", f"too many wrong passwords; try again in {wait} s"
        ).with_headers({"Retry-After": str(wait)})
    if check.matched_hash is None:
        await limiter.failed(keys, now)
        raise ApiError(403, "wrong_password", "current_password is not the password in force")
    await limiter.succeeded(keys[0][0])
    return check.matched_hash


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
