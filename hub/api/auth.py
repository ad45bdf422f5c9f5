"""Who is asking: an integration's bearer token, or a manager's session cookie.

Every ``/api/`` request but the public ones gets a :class:`Viewer` under ``VIEWER``.
A cookie-authenticated request that changes something must also carry the session's
CSRF token in ``X-CSRF-Token`` (bearer tokens are not sent by browsers on their own, so
they need none).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from crm_core.access import Viewer
from crm_core.contracts import same_secret
from hub.api.errors import ApiError, json_error
from hub.keys import TOKENS
from hub.sessions import SESSION_COOKIE, cookie_session

VIEWER = web.RequestKey("viewer", Viewer)
PUBLIC = frozenset(
    {
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/session"),
        ("POST", "/api/v1/setup"),  # the first run: its one-time token is the credential
    }
)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Configuration and the integration channel: admins and integration tokens only.
ADMIN_PATHS = ("/api/v1/routing", "/api/v1/webhooks/", "/api/v1/inbound")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or (request.method, request.path) in PUBLIC:
        return await handler(request)
    authorization = request.headers.get("Authorization")
    if authorization is not None:
        scheme, _, plain = authorization.partition(" ")
        if scheme.lower() != "bearer" or not plain.strip():
            return _unauthorized("send an API token as 'Authorization: Bearer <token>'")
        viewer = await request.app[TOKENS].owner(plain.strip())
        if viewer is None:
            return _unauthorized("the API token is not valid or has been revoked")
        return await _admitted(request, handler, viewer)
    if SESSION_COOKIE in request.cookies:
        found = await cookie_session(request)
        if found is None:
            return _unauthorized("the session has ended: log in again")
        viewer, csrf = found
        if request.method not in SAFE_METHODS and not same_secret(
            request.headers.get("X-CSRF-Token"), csrf
        ):
            return json_error(403, "csrf", "send the session's csrf_token in X-CSRF-Token")
        return await _admitted(request, handler, viewer)
    return _unauthorized("log in, or send an API token as 'Authorization: Bearer <token>'")


async def _admitted(request: web.Request, handler: Handler, viewer: Viewer) -> web.StreamResponse:
    if request.path.startswith(ADMIN_PATHS) and not viewer.is_admin:
        return json_error(403, "forbidden", "only an admin or an integration token may use this")
    request[VIEWER] = viewer
    return await handler(request)


def person(request: web.Request) -> Viewer:
    """The viewer, who must be a manager (not an integration token)."""
    viewer = request[VIEWER]
    if viewer.manager_id is None:
        raise ApiError(403, "forbidden", "only a manager (a session or a manager's token) can")
    return viewer


def require_admin(request: web.Request) -> Viewer:
    viewer = request[VIEWER]
    if not viewer.is_admin:
        raise ApiError(403, "forbidden", "only an admin may change this")
    return viewer


def _unauthorized(message: str) -> web.Response:
    response = json_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="omnihub"'
    return response
