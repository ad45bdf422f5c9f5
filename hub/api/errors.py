"""Every error is JSON that says what is wrong; nothing becomes a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from crm_core.text import scrubbed, text_problem
from hub.keys import SETTINGS

log = logging.getLogger(__name__)


def json_error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    """The error body. Text it echoes from the request (a field's name, a value) is
    scrubbed like stored text (a NUL becomes U+FFFD): the document promises no NUL in
    any string, answers included."""
    body = _echo_safe({"error": error, "message": message, **extra})
    return web.json_response(body, status=status)


def _echo_safe(value: Any) -> Any:
    if isinstance(value, str):
        return scrubbed(value)
    if isinstance(value, dict):
        return {_echo_safe(k): _echo_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_echo_safe(v) for v in value]
    return value


class ApiError(Exception):
    """Raised by handlers; the middleware turns it into a JSON response."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.extra = extra
        self.headers: dict[str, str] = {}

    def with_headers(self, headers: dict[str, str]) -> ApiError:
        self.headers.update(headers)
        return self


def field_error(field: str, problem: str) -> ApiError:
    """A 400 that names the body field at fault (a reference to nothing, ...)."""
    return ApiError(
        400,
        "invalid_body",
        f"{field}: {problem}",
        errors=[{"field": field, "message": problem}],
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


# Routes that take bigger bodies than max_body_bytes (a site chat's file uploads), by path;
# they read the body in chunks and stop at their own limit.
OWN_BODY_LIMITS = web.AppKey("own_body_limits", dict[str, int])


@web.middleware
async def body_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a body that says it is too large before reading a byte of it.

    A chunked body without a length is cut off by aiohttp's ``client_max_size``.
    """
    length = request.content_length
    limit = request.app[SETTINGS].max_body_bytes
    limit = request.app.get(OWN_BODY_LIMITS, {}).get(request.path, limit)
    if length is not None and length > limit:
        return json_error(
            413, "body_too_large", f"the body is {length} bytes; the limit is {limit}"
        )
    return await handler(request)


@web.middleware
async def parameter_text_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a query or path parameter whose text the databases cannot store (a NUL),
    on every route, before a handler sees it: a 400 naming the parameter."""
    for error, parameters in (
        ("invalid_query", request.query),
        ("invalid_path", request.match_info),
    ):
        for name, value in parameters.items():
            problem = text_problem(value) or text_problem(name)
            if problem is not None:
                return json_error(
                    400, error, f"{name}: {problem}", errors=[{"field": name, "message": problem}]
                )
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        response = json_error(exc.status, exc.error, exc.message, **exc.extra)
        response.headers.update(exc.headers)
        return response
    except web.HTTPRequestEntityTooLarge as exc:
        return json_error(413, "body_too_large", exc.text or "the body is too large")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = json_error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:
        if _unavailable(exc):
            log.warning("%s %s: the database is unreachable: %s", request.method, request.path, exc)
            response = json_error(
                503, "database_unavailable", "the database is unavailable or busy; try again"
            )
            response.headers["Retry-After"] = "1"
            return response
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "an internal error; it has been logged")


def _unavailable(exc: BaseException) -> bool:
    """The database is away (restarting, unreachable): nothing was written, and the same
    request may be sent again (a 503, not a 500 that says the hub is broken)."""
    if isinstance(exc, ConnectionError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return False
