"""Bearer API tokens for integrations, checked on every ``/api/v1`` request."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from crm_core.people import TokenOwner
from hub.api.errors import json_error
from hub.keys import TOKENS

TOKEN_OWNER = web.RequestKey("token_owner", TokenOwner)
PUBLIC_PATHS = frozenset({"/api/v1/openapi.json"})


@web.middleware
async def token_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/") or request.path in PUBLIC_PATHS:
        return await handler(request)
    scheme, _, plain = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not plain.strip():
        return _unauthorized("send an API token as 'Authorization: Bearer <token>'")
    owner = await request.app[TOKENS].owner(plain.strip())
    if owner is None:
        return _unauthorized("the API token is not valid or has been revoked")
    request[TOKEN_OWNER] = owner
    return await handler(request)


def _unauthorized(message: str) -> web.Response:
    response = json_error(401, "unauthorized", message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="omnihub"'
    return response
