"""The calls page's shell and the strings its modules build their keys from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from crm_core.call_log import DISPOSITIONS, MISSED
from hub.web import pages

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    app = web.Application()
    pages.install(app)
    return await aiohttp_client(app)


async def test_calls_without_a_session_redirect_to_login(client: Client) -> None:
    response = await client.get("/calls?direction=out", allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert unquote(location.split("=", 1)[1]) == "/calls?direction=out"
    assert response.headers["Content-Security-Policy"] == pages.CSP


def test_calls_shell_has_its_title() -> None:
    body = pages.shell("calls", "en")
    assert "<title>Calls — omnihub</title>" in body
    assert 'data-page="calls"' in body


@pytest.mark.parametrize("locale", pages.LOCALES)
def test_keys_built_from_names_exist(locale: str) -> None:
    """``t(`calls.disposition.${d}`)`` and the like: every outcome the API gives or takes."""
    texts = pages.strings(locale)
    columns = ("when", "direction", "contact", "line", "manager", "outcome", "ring", "talk")
    built = [
        *(f"calls.disposition.{d}" for d in (*DISPOSITIONS, MISSED)),
        *(f"calls.direction.{d}" for d in ("in", "out")),
        *(f"calls.col.{c}" for c in (*columns, "voicemail")),
        "reports.tab.calls",
        "nav.calls",
    ]
    assert [key for key in built if key not in texts] == []
