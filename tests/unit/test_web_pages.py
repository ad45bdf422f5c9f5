"""The inbox's page shell: strict headers, the locale's strings, safe redirects."""

from __future__ import annotations

import json
import re
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


def _i18n(body: str) -> dict[str, str]:
    found = re.search(r'<script type="application/json" id="i18n">(.*?)</script>', body, re.S)
    assert found, body
    data = json.loads(found.group(1))
    assert isinstance(data, dict)
    return data


def test_locales_have_the_same_keys() -> None:
    ru, en = pages.strings("ru"), pages.strings("en")
    assert set(ru) == set(en)
    assert all(value.strip() for value in (*ru.values(), *en.values()))


def test_every_key_the_scripts_use_exists() -> None:
    """``t("key")`` with a literal key in the modules names a key of the dictionaries."""
    used: set[str] = set()
    for path in pages.STATIC_DIR.glob("*.js"):
        used.update(re.findall(r'\bt\("([a-z_.]+)"', path.read_text(encoding="utf-8")))
    assert used
    assert used - set(pages.strings("en")) == set()


@pytest.mark.parametrize(
    "raw",
    [
        "//evil.com",
        "//evil.com/inbox",
        "https://evil.com",
        "http://evil.com/inbox",
        "javascript:alert(1)",
        "/\\evil.com",
        "\\\\evil.com",
        "evil.com",
        "/inbox\r\nSet-Cookie: x=1",
        "",
        None,
    ],
)
def test_next_refuses_anything_but_a_local_path(raw: str | None) -> None:
    assert pages.safe_next(raw) == "/inbox"


@pytest.mark.parametrize("raw", ["/inbox", "/board?funnel=webinar", "/contacts/12", "/tasks#x"])
def test_next_keeps_local_paths(raw: str) -> None:
    assert pages.safe_next(raw) == raw


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("ru-RU,ru;q=0.9,en;q=0.8", "ru"),
        ("en-US,en;q=0.9", "en"),
        ("de-DE,en;q=0.5,ru;q=0.4", "en"),
        ("fr, ru;q=0.1", "ru"),
        ("en;q=0, ru", "ru"),
        ("", "ru"),
        (None, "ru"),
    ],
)
def test_locale_from_accept_language(header: str | None, locale: str) -> None:
    assert pages.preferred_locale(header) == locale


async def test_login_page_is_served_without_a_session(client: Client) -> None:
    response = await client.get("/login", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert response.status == 200
    assert response.content_type == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "default-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    body = await response.text()
    assert '<html lang="en">' in body
    assert _i18n(body)["login.submit"] == "Sign in"
    assert 'data-page="login"' in body
    # No inline script: only the JSON data block and the module by URL.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", body, re.S)
    assert [
        attrs for attrs, text in scripts if text.strip() and "application/json" not in attrs
    ] == []


async def test_login_page_in_russian(client: Client) -> None:
    response = await client.get("/login", headers={"Accept-Language": "ru-RU,ru;q=0.9"})
    body = await response.text()
    assert '<html lang="ru">' in body
    assert _i18n(body)["login.submit"] == "Войти"
    forced = await (await client.get("/login?lang=en", headers={"Accept-Language": "ru"})).text()
    assert _i18n(forced)["login.submit"] == "Sign in"


async def test_login_page_carries_only_a_safe_next(client: Client) -> None:
    body = await (await client.get("/login", params={"next": "//evil.com"})).text()
    assert 'data-next="/inbox"' in body
    body = await (await client.get("/login", params={"next": "/board?funnel=a&b=<x>"})).text()
    assert 'data-next="/board?funnel=a&amp;b=&lt;x&gt;"' in body


async def test_data_block_cannot_close_its_script() -> None:
    body = pages.shell("login", "en", {"next": "/x"})
    block = body.split('id="i18n">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block
    assert json.loads(block) == pages.strings("en")


@pytest.mark.parametrize(
    "path", ["/inbox", "/board", "/tasks", "/contacts/7", "/inbox?c=3&view=all"]
)
async def test_pages_without_a_session_redirect_to_login(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location.startswith("/login?next=")
    assert pages.safe_next(unquote(location.split("=", 1)[1])) == path
    assert response.headers["Content-Security-Policy"] == pages.CSP


async def test_a_stale_cookie_is_no_session(client: Client) -> None:
    client.session.cookie_jar.update_cookies({"omnihub_session": "x" * 200})
    response = await client.get("/inbox", allow_redirects=False)
    assert response.status == 302


async def test_root_goes_to_the_inbox(client: Client) -> None:
    response = await client.get("/", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/inbox"


async def test_static_assets_are_served_with_strict_headers(client: Client) -> None:
    response = await client.get("/static/app.js")
    assert response.status == 200
    assert "javascript" in response.content_type
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    css = await client.get("/static/app.css")
    assert css.content_type == "text/css"
    missing = await client.get("/static/nope.js")
    assert missing.status == 404


def test_scripts_never_write_html() -> None:
    """Rendering goes through textContent and createElement only."""
    for path in pages.STATIC_DIR.glob("*.js"):
        source = path.read_text(encoding="utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in source, f"{path.name} uses {sink}"
