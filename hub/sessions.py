"""The inbox's session cookie and the brake on guessing passwords.

The cookie is HttpOnly (scripts never read it), SameSite=Lax and, by default, Secure.
Failed logins are counted per email and per client address in a sliding window; past
the limit the login answers 429 with ``Retry-After``, whatever the password. Without
``redis_url`` the counts live in this process; with it they live in Redis and every web
process brakes on the same counts (:class:`hub.shared_state.RedisLoginLimiter`).
"""

from __future__ import annotations

import math
from collections import defaultdict, deque
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from aiohttp import web

from crm_core.access import Viewer
from crm_core.logins import session_viewer
from hub.keys import CLOCK, DATABASE, SETTINGS

SESSION_COOKIE = "omnihub_session"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def same_origin(request: web.Request) -> bool:
    """Whether a browser sent the request from the hub's own pages: its ``Origin`` names
    the host and port of the request's own ``Host``. No ``Origin`` at all is a client
    that is not a browser (browsers send one with every POST and WebSocket handshake).

    The scheme is not compared with the request's own: behind a proxy that ends TLS
    the hub itself is reached over http. A Host without a port is taken to be on the
    default port of the Origin's scheme.
    """
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    try:
        sent = urlsplit(origin)
        port = sent.port or _DEFAULT_PORTS.get(sent.scheme)
        own = urlsplit(f"//{request.host}")
        own_port = own.port or port
    except ValueError:  # a port that is no number
        return False
    return (
        sent.scheme in _DEFAULT_PORTS
        and bool(sent.hostname)
        and "@" not in sent.netloc
        and sent.hostname == own.hostname
        and port == own_port
        and sent.path in ("", "/")
    )


async def cookie_session(request: web.Request) -> tuple[Viewer, str] | None:
    """The viewer and CSRF token of the request's session cookie, if it is live."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie or len(cookie) > 128:
        return None
    now = request.app[CLOCK].now()
    return await request.app[DATABASE].read(lambda session: session_viewer(session, cookie, now))


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, cookie: str, expires: datetime
) -> None:
    lifetime = expires - request.app[CLOCK].now()
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=max(0, int(lifetime.total_seconds())),
        path="/",
        httponly=True,
        secure=request.app[SETTINGS].session_cookie_secure,
        samesite="Lax",
    )


def clear_session_cookie(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")


class LoginLimiter:
    """Failed attempts in a sliding window, per key (an email, a client address)."""

    def __init__(self, limit: int, window: timedelta) -> None:
        self._limit = limit
        self._window = window
        self._failures: defaultdict[str, deque[datetime]] = defaultdict(deque)

    async def retry_after(self, keys: list[tuple[str, int]], now: datetime) -> int | None:
        """Seconds until a login may be tried again, or None when it may be tried now.

        ``keys`` pairs each key with its multiple of the limit (an address gets more
        room than one email, since many people may share it)."""
        waits = []
        for key, factor in keys:
            failures = self._recent(key, now)
            if len(failures) >= self._limit * factor:
                waits.append((failures[0] + self._window - now).total_seconds())
        return max(1, math.ceil(max(waits))) if waits else None

    async def failed(self, keys: list[tuple[str, int]], now: datetime) -> None:
        for key, _factor in keys:
            self._recent(key, now).append(now)
        if len(self._failures) > 100_000:  # a flood of random emails: forget the oldest half
            for key in list(self._failures)[:50_000]:
                del self._failures[key]

    async def succeeded(self, email_key: str) -> None:
        self._failures.pop(email_key, None)

    def _recent(self, key: str, now: datetime) -> deque[datetime]:
        failures = self._failures[key]
        while failures and failures[0] <= now - self._window:
            failures.popleft()
        return failures


LOGIN_LIMITER = web.AppKey("login_limiter", LoginLimiter)
