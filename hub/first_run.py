"""The first run: while the hub has no admin, each start says a one-time setup link.

The link (``/setup#<token>``: the token in the fragment, so it reaches no access log nor
``Referer``) opens a page that creates the first admin through ``POST /api/v1/setup``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from functools import partial

from aiohttp import web

from crm_core.first_run import issue_setup_token
from hub.keys import CLOCK, DATABASE, SETTINGS
from hub.settings import SettingsError

log = logging.getLogger(__name__)


def install(app: web.Application) -> None:
    """After the database is open (``_services``): a web process says the link."""
    if app[SETTINGS].setup_link_minutes < 1:
        raise SettingsError("setup_link_minutes: at least 1")
    app.cleanup_ctx.append(_announce)


async def _announce(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    now = app[CLOCK].now()
    valid_for = timedelta(minutes=settings.setup_link_minutes)
    token = await app[DATABASE].write(partial(issue_setup_token, now=now, valid_for=valid_for))
    if token is not None:
        host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host  # noqa: S104
        base = settings.public_url.rstrip("/") or f"http://{host}:{settings.port}"
        log.warning(
            "the hub has no admin yet: open %s/setup#%s to create the first one "
            "(the link works once, until %s UTC; a restart makes a new one)",
            base,
            token,
            (now + valid_for).strftime("%Y-%m-%d %H:%M"),
        )
    yield
