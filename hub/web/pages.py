"""The inbox's pages: one small HTML shell per page, the static assets, strict headers.

Every page is the same shell: the locale, that locale's UI strings as a JSON data block
(never executed), and ``/static/app.js``, which builds the page from the REST API with
``textContent`` only. A page asked for without a live session redirects to
``/login?next=<the page>``; ``next`` is only ever a path on this site.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from functools import cache
from pathlib import Path
from urllib.parse import quote, urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.models import Manager
from hub.keys import DATABASE
from hub.sessions import SESSION_COOKIE, cookie_session

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
I18N_DIR = HERE / "i18n"
LOCALES = ("ru", "en")
DEFAULT_LOCALE = "ru"
DEFAULT_NEXT = "/inbox"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
PAGE_PREFIXES = (
    "/static/",
    "/login",
    "/setup",
    "/inbox",
    "/board",
    "/tasks",
    "/calls",
    "/reports",
    "/contacts/",
)
TITLES = {
    "login": "page.login",
    "setup": "page.setup",
    "inbox": "page.inbox",
    "board": "page.board",
    "tasks": "page.tasks",
    "calls": "page.calls",
    "reports": "page.reports",
    "contact": "page.contact",
}


def install(app: web.Application) -> None:
    """Add the pages, the static route and the pages' security headers to ``app``."""
    app.router.add_get("/", root)
    app.router.add_get("/login", login_page)
    app.router.add_get("/setup", setup_page)
    app.router.add_get("/inbox", _page("inbox"))
    app.router.add_get("/board", _page("board"))
    app.router.add_get("/tasks", _page("tasks"))
    app.router.add_get("/calls", _page("calls"))
    app.router.add_get("/reports", _page("reports"))
    app.router.add_get(r"/contacts/{id:\d{1,18}}", _page("contact"))
    app.router.add_static("/static/", STATIC_DIR, name="static")
    app.on_response_prepare.append(_headers)


@cache
def strings(locale: str) -> dict[str, str]:
    """The UI strings of ``locale`` (ru or en)."""
    if locale not in LOCALES:
        raise ValueError(f"unknown locale {locale!r}")
    data = json.loads((I18N_DIR / f"{locale}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return {str(k): str(v) for k, v in data.items()}


@cache
def asset_version() -> str:
    """A short digest of the static files: the shell's URLs change when they do."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):  # the widget's folder too
        if path.is_file():
            digest.update(str(path.relative_to(STATIC_DIR)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def safe_next(raw: str | None) -> str:
    """``raw`` when it is a path on this site, else the inbox.

    Refused: absolute URLs (``https://evil.com``), scheme-relative ones (``//evil.com``),
    backslashes (browsers read ``/\\evil.com`` as ``//evil.com``), control characters.
    """
    if not raw or len(raw) > 2000 or not raw.startswith("/") or raw.startswith("//"):
        return DEFAULT_NEXT
    if "\\" in raw or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in raw):
        return DEFAULT_NEXT
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return raw


def preferred_locale(accept_language: str | None) -> str:
    """The first of our locales in an ``Accept-Language`` header, by quality."""
    best: tuple[float, int, str] | None = None
    for position, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        language = tag.strip().lower().split("-")[0]
        if language not in LOCALES:
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality <= 0:
            continue
        candidate = (-quality, position, language)
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else DEFAULT_LOCALE


def shell(page: str, locale: str, data: dict[str, str] | None = None) -> str:
    """The HTML of a page: no inline script, only a JSON data block."""
    texts = strings(locale)
    # Inside <script> only "</" could end the block: escape <, > and & as JSON escapes.
    blob = (
        json.dumps(texts, ensure_ascii=False, sort_keys=True)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    attributes = "".join(
        f' data-{html.escape(name)}="{html.escape(value, quote=True)}"'
        for name, value in (data or {}).items()
    )
    version = asset_version()
    title = html.escape(texts[TITLES[page]])
    return (
        "<!doctype html>\n"
        f'<html lang="{locale}">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{title} — omnihub</title>\n"
        f'<link rel="stylesheet" href="/static/app.css?v={version}">\n'
        f'<script type="application/json" id="i18n">{blob}</script>\n'
        f'<script type="module" src="/static/app.js?v={version}"></script>\n'
        "</head>\n"
        f'<body data-page="{page}"{attributes}>\n'
        '<header id="top"></header>\n'
        f'<main id="main"><p class="muted empty">{html.escape(texts["app.loading"])}</p></main>\n'
        f"<noscript><p>{html.escape(texts['app.noscript'])}</p></noscript>\n"
        "</body>\n</html>\n"
    )


def _html(body: str) -> web.Response:
    response = web.Response(text=body, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-cache"
    return response


async def _manager_locale(request: web.Request) -> str | None:
    """The logged-in manager's locale, or None without a live session."""
    if SESSION_COOKIE not in request.cookies:
        return None
    found = await cookie_session(request)
    if found is None:
        return None
    manager_id = found[0].manager_id

    def read(session: Session) -> str | None:
        return session.scalar(select(Manager.locale).where(Manager.id == manager_id))

    locale = await request.app[DATABASE].read(read)
    if locale in LOCALES:
        return str(locale)
    return preferred_locale(request.headers.get("Accept-Language"))


def _to_login(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"/login?next={quote(safe_next(request.path_qs), safe='/')}")


def _page(page: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        locale = await _manager_locale(request)
        if locale is None:
            raise _to_login(request)
        data = {"contact-id": request.match_info["id"]} if page == "contact" else None
        return _html(shell(page, locale, data))

    handler.__name__ = f"{page}_page"
    return handler


async def root(request: web.Request) -> web.Response:
    raise web.HTTPFound(DEFAULT_NEXT)


async def login_page(request: web.Request) -> web.Response:
    target = safe_next(request.query.get("next"))
    locale = await _manager_locale(request)
    if locale is not None:  # already logged in
        raise web.HTTPFound(target)
    wanted = request.query.get("lang")
    if wanted not in LOCALES:
        wanted = preferred_locale(request.headers.get("Accept-Language"))
    return _html(shell("login", wanted, {"next": target}))


async def setup_page(request: web.Request) -> web.Response:
    """The first run's page: the token is in the link's fragment, read by the page."""
    wanted = request.query.get("lang")
    if wanted not in LOCALES:
        wanted = preferred_locale(request.headers.get("Accept-Language"))
    return _html(shell("setup", wanted))


async def _headers(request: web.Request, response: web.StreamResponse) -> None:
    path = request.path
    if path == "/" or path.startswith(PAGE_PREFIXES):
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if path.startswith("/static/"):
            # Revalidate every time (a 304 when unchanged): the modules import each other
            # by plain URL, so a long cache could mix old and new files.
            response.headers["Cache-Control"] = "no-cache"
