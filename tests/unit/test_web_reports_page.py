"""The reports page's shell and the strings its modules build their keys from."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.web import pages

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[[web.Application], Awaitable[Client]]


@pytest.fixture
async def client(aiohttp_client: MakeClient) -> Client:
    app = web.Application()
    pages.install(app)
    return await aiohttp_client(app)


@pytest.mark.parametrize("path", ["/reports", "/reports?report=funnel&from=2026-03-01"])
async def test_reports_without_a_session_redirect_to_login(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert pages.safe_next(unquote(location.split("=", 1)[1])) == path
    assert response.headers["Content-Security-Policy"] == pages.CSP


def test_reports_shell_has_its_title() -> None:
    body = pages.shell("reports", "en")
    assert "<title>Reports — omnihub</title>" in body
    assert 'data-page="reports"' in body


@pytest.mark.parametrize("locale", pages.LOCALES)
def test_keys_built_from_names_exist(locale: str) -> None:
    """Keys the modules put together (``t(`reports.tab.${view}`)``) are in both locales."""
    texts = pages.strings(locale)
    built = [
        *(f"reports.tab.{v}" for v in ("activity", "funnel", "sources", "abc_xyz")),
        *(f"reports.model.{m}" for m in ("first", "last")),
        *(f"reports.dimension.{d}" for d in ("channel", "utm_source", "utm_campaign", "source")),
        *(f"reports.by.{b}" for b in ("client", "product")),
        *(f"deal.{f}" for f in ("title", "amount", "currency", "product", "owner")),
        "nav.reports",
    ]
    assert [key for key in built if key not in texts] == []
