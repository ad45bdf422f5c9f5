"""The site chat end to end in Chromium: a host page on another origin carries the tag, a
visitor talks to a manager in the inbox, both live; what is typed while the socket is cut
arrives once; a page of an origin the widget does not allow gets nothing; untrusted text
stays text both ways (docs/site-chat.md)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import os
import re
import shutil
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Dialog,
    FilePayload,
    Frame,
    Locator,
    Page,
    ViewportSize,
    WebSocketRoute,
    expect,
)

from tests.e2e.conftest import WAIT_MS, Hub, free_port, running_hub
from tests.e2e.test_inbox import log_in

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)

KEY = "cloud-site"
SECRET = "e2e-widget-secret"  # the site's HMAC key of its users' ids
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
HOST_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Cloud Example: managed databases</title>
<style>
  body {{ margin: 0; font: 16px/1.5 Georgia, serif; color: #222; background: #fbfaf7; }}
  header {{ padding: 18px 48px; background: #14324a; color: #fff; font: 600 20px sans-serif; }}
  main {{ padding: 32px 48px; max-width: 640px; }}
  /* a site's CSS that would break a widget living in the page itself */
  button, iframe {{ border: 6px dashed red !important; }}
  * {{ font-family: "Comic Sans MS", cursive; }}
</style>
</head>
<body>
<header>Cloud Example</header>
<main>
<h1>Managed PostgreSQL</h1>
<p>Clusters of 1 to 15 nodes, backups every hour, point-in-time recovery for 7 days.</p>
<p>From 8 000 &#8381; a month. Questions? Ask us in the chat.</p>
</main>
<script src="{hub}/widget.js" data-key="{key}"{attributes} async></script>
</body>
</html>
"""
XSS_NAME = '<img src=x onerror="window.__pwned=1;alert(1)">Eve'
XSS_VISITOR = "<script>window.__pwned=2;alert(2)</script><b>bold?</b>"
XSS_MANAGER = '<img src=x onerror="window.__pwned=3;alert(3)"> <a href="javascript:alert(4)">x</a>'


@dataclass
class Chat:
    """A hub with a site chat widget, and host pages of two origins."""

    hub: Hub
    site: str  # a page of an allowed origin, with the tag
    foreign: str  # a page of an origin the widget does not allow, with the same tag


@asynccontextmanager
async def host_site(hub_url: str, port: int) -> AsyncIterator[None]:
    """A website of its own (another origin than the hub's) that carries the tag."""

    async def index(request: web.Request) -> web.Response:
        """The page; ``?user=ID`` as the site's logged-in user (``&forged=1``: with a
        wrong hash), ``?lang=ru`` as the tag's language."""
        attributes = ""
        user = request.query.get("user")
        if user:
            digest = hmac.new(SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()
            if request.query.get("forged"):
                digest = "0" * 64
            attributes += (
                f' data-user-id="{html.escape(user)}" data-user-hash="{digest}"'
                ' data-user-name="Мария Соколова" data-user-email="maria@example.ru"'
            )
        if request.query.get("lang"):
            attributes += f' data-language="{html.escape(request.query["lang"])}"'
        body = HOST_PAGE.format(hub=hub_url, key=KEY, attributes=attributes)
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield
    finally:
        await runner.cleanup()


@pytest.fixture
async def chat(sqlite_url: str, tmp_path: Path) -> AsyncIterator[Chat]:
    async with running_chat(sqlite_url, tmp_path) as running:
        yield running


@asynccontextmanager
async def running_chat(
    sqlite_url: str, tmp_path: Path, *, sales_hours: str = ""
) -> AsyncIterator[Chat]:
    """The hub with one widget (with ``sales_hours``: the Sales team's, shown in it)."""
    site_port = free_port()
    foreign_port = free_port()
    while foreign_port == site_port:
        foreign_port = free_port()
    # "localhost" is another site than the hub's 127.0.0.1: the frame is a third party.
    site = f"http://localhost:{site_port}"
    widget: dict[str, Any] = {
        "key": KEY,
        "secret": SECRET,
        "allowed_origins": [site],
        "title": "Cloud Example",
        "greeting": {
            "en": "Hi! Ask us about databases, we answer within minutes.",
            "ru": "Здравствуйте! Спросите нас о базах данных.",
        },
        "color": "#0b7a5a",
        "prechat": {"name": "required", "email": "optional", "phone": "off"},
    }
    if sales_hours:
        widget["team"] = "Sales"
    async with AsyncExitStack() as stack:
        hub = await stack.enter_async_context(
            running_hub(
                sqlite_url,
                tmp_path,
                {"site_chat": {"widgets": [widget]}},
                sales_hours=sales_hours,
            )
        )
        await stack.enter_async_context(host_site(hub.url, site_port))
        await stack.enter_async_context(host_site(hub.url, foreign_port))
        yield Chat(hub=hub, site=site, foreign=f"http://localhost:{foreign_port}")


async def visitor_page(
    browser: Browser, *, locale: str = "en-US", viewport: ViewportSize = VIEWPORT
) -> tuple[BrowserContext, Page, list[str]]:
    """A visitor's browser; the list collects the dialogs that open (none should)."""
    context = await browser.new_context(viewport=viewport, locale=locale)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    dialogs = watch_dialogs(page)
    return context, page, dialogs


def watch_dialogs(page: Page) -> list[str]:
    dialogs: list[str] = []

    async def seen(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", seen)
    return dialogs


async def widget_frame(page: Page, *, online: bool = False) -> Frame:
    """The chat's frame, loaded (and connected, if ``online``). The loader's shadow root is
    closed (no selector reaches into it), but the page's frames are listed by URL."""
    for _ in range(WAIT_MS // 50):
        for frame in page.frames:
            if "/widget/frame?" in frame.url:
                state = "online" if online else re.compile(".")
                await expect(frame.locator("body")).to_have_attribute("data-socket", state)
                return frame
        await page.wait_for_timeout(50)
    raise AssertionError(f"no widget frame in {[f.url for f in page.frames]}")


async def open_widget(page: Page, frame: Frame) -> None:
    """Click the launcher (by where it is drawn: a closed shadow root hides it from
    selectors) and wait for the panel."""
    panel = await frame.frame_element()
    assert not await panel.is_visible()
    # The launcher: 56 px round, 20 px from the bottom right corner (loader.js).
    size = page.viewport_size
    assert size is not None
    await page.mouse.click(size["width"] - 48, size["height"] - 48)
    await expect(frame.locator("body")).to_have_attribute("data-panel", "open")
    await expect(frame.locator("body")).to_have_attribute("data-socket", "online")
    assert await panel.is_visible()
    assert await page.evaluate("window.omnihubWidget.isOpen()") is True


def messages(frame: Frame, who: str | None = None) -> Locator:
    selector = '[data-role="message"]' + (f'[data-from="{who}"]' if who else "")
    return frame.locator(selector)


async def say(frame: Frame, text: str) -> None:
    composer = frame.locator('[data-role="composer"]')
    await composer.fill(text)
    await composer.press("Enter")
    await expect(composer).to_have_value("")


async def api_get(hub: Hub, path: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{hub.url}{path}", headers={"Authorization": f"Bearer {hub.token}"}) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def site_chat_messages(hub: Hub) -> list[dict[str, Any]]:
    """Every message of the site chat's conversations, through the REST API."""
    found: list[dict[str, Any]] = []
    conversations = await api_get(hub, "/api/v1/conversations?limit=100")
    for item in conversations["items"]:
        detail = await api_get(hub, f"/api/v1/conversations/{item['id']}?limit=100")
        if detail["channel"] == "site_chat":
            found.extend(detail["messages"]["items"])
    return found


async def test_visitor_and_manager_talk_live(browser: Browser, chat: Chat, tmp_path: Path) -> None:
    hub = chat.hub
    anna = await log_in(browser, hub, "anna")
    anna_dialogs = watch_dialogs(anna)
    await anna.evaluate("window.__still_here = true")

    context, visitor, dialogs = await visitor_page(browser)
    await visitor.goto(f"{chat.site}/?utm_source=e2e&utm_campaign=pg-spring-sale")
    frame = await widget_frame(visitor)
    # A new visitor's page view opens no session: the socket waits for the launcher.
    await expect(frame.locator("body")).to_have_attribute("data-socket", "idle")
    await open_widget(visitor, frame)
    # The host's CSS does not reach the widget (closed shadow root, its own frame).
    await expect(frame.locator("h1")).to_have_text("Cloud Example")
    await expect(frame.locator('[data-role="greeting"]')).to_contain_text("Ask us about databases")

    # The pre-chat form comes first; its required name is enforced.
    form = frame.locator('[data-role="prechat"]')
    await expect(form).to_be_visible()
    await expect(frame.locator('[data-role="composer"]')).to_be_hidden()
    await form.locator('button[type="submit"]').click()
    await expect(form.locator("#prechat-name-error")).to_have_text("Please fill in this field.")
    await form.locator('input[name="name"]').fill("Maria Sokolova")
    await form.locator('input[name="email"]').fill("maria@example.com")
    await form.locator('button[type="submit"]').click()
    await expect(form).to_be_hidden()

    question = "Hello! How much is a 3-node PostgreSQL cluster?\nWith backups, please."
    await say(frame, question)
    mine = messages(frame, "visitor")
    await expect(mine).to_have_count(1)
    await expect(mine.locator(".text")).to_have_text(question)
    await expect(mine).to_have_attribute("data-status", re.compile("sent|delivered|read"))

    # The manager sees it arrive without a reload, labelled as the site chat.
    item = anna.locator("#conversations button.conv", has_text="Maria Sokolova")
    await expect(item).to_be_visible()
    await expect(item.locator(".tag")).to_have_text("Чат на сайте")  # the manager reads Russian
    await item.click()
    await expect(anna.locator("#timeline .msg-in .text").last).to_have_text(question)
    await expect(anna.locator("#contact-card")).to_contain_text("maria@example.com")
    # Where the visitor came from: the host page's UTM tags, captured by the loader.
    await expect(anna.locator("#contact-card")).to_contain_text("pg-spring-sale")
    # ... which the visitor sees as read.
    await expect(mine).to_have_attribute("data-status", "read")

    # Typing, both ways.
    await frame.locator('[data-role="composer"]').fill("And the price of")
    await expect(anna.locator("#client-typing")).to_be_visible()
    await expect(anna.locator("#client-typing")).to_have_text("Клиент печатает…")
    await anna.fill("#reply-text", "Good afternoon, Maria!")
    await expect(frame.locator('[data-role="typing"]')).to_be_visible()

    reply = "Good afternoon, Maria! A 3-node cluster is from 24 000 ₽ a month, backups included."
    await anna.fill("#reply-text", reply)
    await anna.click("#send")
    theirs = messages(frame, "manager")
    await expect(theirs).to_have_count(1)
    await expect(theirs.locator(".text")).to_have_text(reply)
    await expect(theirs.locator(".author")).to_have_text("Анна")
    await expect(frame.locator('[data-role="typing"]')).to_be_hidden()
    await say(frame, "And the price of 5 nodes?")
    await expect(messages(frame, "visitor")).to_have_count(2)
    await expect(anna.locator("#timeline .msg-in .text").last).to_have_text(
        "And the price of 5 nodes?"
    )

    shown = " ".join(await messages(frame).all_inner_texts())
    assert "null" not in shown
    assert "undefined" not in shown
    shot = tmp_path / "site-chat.png"
    await visitor.screenshot(path=str(shot))
    if os.environ.get("OMNIHUB_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "site-chat.png")

    # Closed, the panel counts what the visitor has not seen; opened, it is read.
    await frame.locator('[data-role="close"]').click()
    await expect(frame.locator("body")).to_have_attribute("data-panel", "closed")
    assert not await (await frame.frame_element()).is_visible()
    await anna.fill("#reply-text", "From 38 000 ₽.")
    await anna.click("#send")
    await expect(messages(frame, "manager")).to_have_count(2)
    await expect(frame.locator("body")).to_have_attribute("data-unread", "1")
    await open_widget(visitor, frame)
    await expect(frame.locator("body")).to_have_attribute("data-unread", "0")

    # A reload keeps the session (its token in the host's storage): the same history.
    await visitor.reload()
    frame = await widget_frame(visitor, online=True)  # a session: connected at once
    await expect(frame.locator('[data-role="prechat"]')).to_be_hidden()
    await expect(messages(frame)).to_have_count(4)
    await expect(messages(frame).nth(0).locator(".text")).to_have_text(question)
    await expect(messages(frame).nth(1).locator(".text")).to_have_text(reply)
    await expect(frame.locator("body")).to_have_attribute("data-unread", "0")

    rows = await site_chat_messages(hub)
    assert [r["direction"] for r in rows] == ["in", "out", "in", "out"]
    assert await anna.evaluate("window.__still_here") is True
    assert dialogs == []
    assert anna_dialogs == []
    await context.close()
    await anna.context.close()


async def test_a_message_written_while_the_socket_is_cut_arrives_once(
    browser: Browser, chat: Chat
) -> None:
    sockets: list[WebSocketRoute] = []
    cut = asyncio.Event()  # set: the network is down
    drop_acks = asyncio.Event()  # set: the hub's next ack is lost with the connection

    async def through(route: WebSocketRoute) -> None:
        if cut.is_set():
            await route.close(code=1006, reason="network")
            return
        server = route.connect_to_server()
        sockets.append(route)
        route.on_message(server.send)

        async def to_page(message: str | bytes) -> None:
            if drop_acks.is_set() and isinstance(message, str) and '"ack"' in message:
                # Stored by the hub, but the answer never reaches the visitor.
                drop_acks.clear()
                cut.set()
                await route.close(code=1006, reason="network")
                return
            route.send(message)

        server.on_message(to_page)

    context, visitor, dialogs = await visitor_page(browser)
    await context.route_web_socket(re.compile(r"/widget/v1/socket$"), through)
    await visitor.goto(chat.site)
    frame = await widget_frame(visitor)
    await open_widget(visitor, frame)
    form = frame.locator('[data-role="prechat"]')
    await form.locator('input[name="name"]').fill("Igor")
    await form.locator('button[type="submit"]').click()
    await say(frame, "first, while online")
    await expect(messages(frame, "visitor").last).to_have_attribute("data-status", "sent")

    # The network drops: what is written now waits, shown as sending.
    cut.set()
    await sockets[-1].close(code=1006, reason="network")
    await expect(frame.locator("body")).to_have_attribute("data-socket", "offline")
    await expect(frame.locator('[data-role="status"]')).to_contain_text("Reconnecting")
    await say(frame, "second, written offline")
    waiting = messages(frame, "visitor").last
    await expect(waiting).to_have_attribute("data-status", "sending")
    # The network comes back: the widget reconnects and sends it with the same id.
    cut.clear()
    await expect(frame.locator("body")).to_have_attribute("data-socket", "online")
    await expect(waiting).to_have_attribute("data-status", "sent")

    # The hub stores a message but its ack is lost: the widget sends it again on
    # reconnect, and the hub keeps it once.
    drop_acks.set()
    await say(frame, "third, ack lost")
    await expect(frame.locator("body")).to_have_attribute("data-socket", "offline")
    third = messages(frame, "visitor").last
    await expect(third).to_have_attribute("data-status", "sending")
    cut.clear()
    await expect(frame.locator("body")).to_have_attribute("data-socket", "online")
    await expect(third).to_have_attribute("data-status", "sent")
    await expect(messages(frame, "visitor")).to_have_count(3)

    # Written while down, then the page is reloaded before the network is back: the
    # frame's sessionStorage kept it, and it goes when the socket does.
    cut.set()
    await sockets[-1].close(code=1006, reason="network")
    await expect(frame.locator("body")).to_have_attribute("data-socket", "offline")
    await say(frame, "fourth, across a reload")
    await expect(messages(frame, "visitor").last).to_have_attribute("data-status", "sending")
    await visitor.reload()
    frame = await widget_frame(visitor)
    fourth = messages(frame, "visitor").last
    await expect(fourth.locator(".text")).to_have_text("fourth, across a reload")
    await expect(fourth).to_have_attribute("data-status", "sending")
    cut.clear()
    await expect(frame.locator("body")).to_have_attribute("data-socket", "online")
    await expect(fourth).to_have_attribute("data-status", "sent")
    await expect(messages(frame, "visitor")).to_have_count(4)

    texts = [r["text"] for r in await site_chat_messages(chat.hub)]
    assert texts == [
        "first, while online",
        "second, written offline",
        "third, ack lost",
        "fourth, across a reload",
    ]
    assert len(sockets) >= 4
    assert dialogs == []
    await context.close()


async def test_a_page_of_another_origin_gets_no_widget(browser: Browser, chat: Chat) -> None:
    context, page, _dialogs = await visitor_page(browser)
    console: list[str] = []
    refused = asyncio.Event()

    def heard(message: ConsoleMessage) -> None:
        console.append(f"{message.type}: {message.text}")
        if message.text.startswith("omnihub widget:"):
            refused.set()

    page.on("console", heard)
    await page.goto(chat.foreign)
    await asyncio.wait_for(refused.wait(), WAIT_MS / 1000)
    refusal = [line for line in console if "omnihub widget:" in line]
    assert refusal, console
    assert refusal[0].startswith("error: "), console
    assert "origin" in refusal[0], refusal
    # Nothing was added to the page: no host element, no frame, no launcher.
    assert await page.evaluate("document.querySelector('[data-omnihub]')") is None
    assert await page.evaluate("typeof window.omnihubWidget") == "undefined"
    assert not [f for f in page.frames if "/widget/frame" in f.url]

    # The frame itself, asked for by such a page, may not be shown there (CSP).
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{chat.hub.url}/widget/frame",
            params={"key": KEY, "host": chat.foreign},
        ) as response,
    ):
        policy = response.headers.get("Content-Security-Policy", "")
        assert response.status != 200 or chat.foreign not in policy, policy
    # ... nor may it open the widget's socket.
    socket_url = chat.hub.url.replace("http://", "ws://") + "/widget/v1/socket"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as handshake:
            async with http.ws_connect(socket_url, headers={"Origin": chat.foreign}):
                pass
    assert handshake.value.status == 403
    await context.close()


async def test_untrusted_text_stays_text_both_ways(browser: Browser, chat: Chat) -> None:
    hub = chat.hub
    context, visitor, dialogs = await visitor_page(browser, locale="ru-RU")
    errors: list[str] = []
    visitor.on("pageerror", lambda error: errors.append(str(error)))
    await visitor.goto(chat.site)
    frame = await widget_frame(visitor)
    await open_widget(visitor, frame)
    # Russian from the browser's language; the widget's own texts follow.
    await expect(frame.locator("html")).to_have_attribute("lang", "ru")
    form = frame.locator('[data-role="prechat"]')
    await expect(form.locator('button[type="submit"]')).to_have_text("Начать чат")
    await form.locator('input[name="name"]').fill(XSS_NAME)
    await form.locator('button[type="submit"]').click()
    await say(frame, XSS_VISITOR)
    await expect(messages(frame, "visitor").locator(".text")).to_have_text(XSS_VISITOR)

    anna = await log_in(browser, hub, "anna")
    anna_dialogs = watch_dialogs(anna)
    item = anna.locator("#conversations button.conv").first
    await expect(item.locator(".name")).to_have_text(XSS_NAME)
    await item.click()
    await expect(anna.locator("#timeline .msg-in .text").last).to_have_text(XSS_VISITOR)
    await anna.fill("#reply-text", XSS_MANAGER)
    await anna.click("#send")

    theirs = messages(frame, "manager")
    await expect(theirs.locator(".text")).to_have_text(XSS_MANAGER)
    # Text, not markup: no element came out of it, nothing ran.
    assert await frame.locator('[data-role="message"] img, [data-role="message"] a').count() == 0
    assert await frame.locator('[data-role="message"] script, [data-role="message"] b').count() == 0
    await visitor.wait_for_timeout(200)
    for target in (visitor, anna):
        assert await target.evaluate("typeof window.__pwned") == "undefined"
    assert await frame.evaluate("typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert anna_dialogs == []
    assert errors == []
    await context.close()
    await anna.context.close()


async def test_out_of_hours_the_visitor_leaves_contacts_and_a_file(
    browser: Browser, sqlite_url: str, tmp_path: Path
) -> None:
    # The team works one day a week, and not today (nor yesterday: the hub's clock runs
    # three hours behind).
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(datetime.now(UTC).weekday() + 3) % 7]
    hours = f"{{timezone: UTC, weekly: {{{day}: ['09:00-18:00']}}}}"
    async with running_chat(sqlite_url, tmp_path, sales_hours=hours) as chat:
        context, visitor, dialogs = await visitor_page(browser, viewport=PHONE)
        await visitor.goto(chat.site)
        frame = await widget_frame(visitor)
        await open_widget(visitor, frame)
        # On a phone the panel takes the whole screen.
        panel = await (await frame.frame_element()).bounding_box()
        assert panel == {"x": 0, "y": 0, "width": PHONE["width"], "height": PHONE["height"]}
        await expect(frame.locator('[data-role="offline"]')).to_have_text(
            "We are offline now. Leave a message and your contacts and we will get back to you."
        )
        await expect(frame.locator('[data-role="hours"]')).to_contain_text("09:00-18:00")

        # A way back is required: an email or a phone (the phone field is off in hours).
        form = frame.locator('[data-role="prechat"]')
        await form.locator('input[name="name"]').fill("Oleg")
        await form.locator('button[type="submit"]').click()
        await expect(form.locator('[data-role="prechat-error"]')).to_have_text(
            "Please leave an email or a phone number."
        )
        await form.locator('input[name="phone"]').fill("8 (916) 123-45-67")
        await form.locator('button[type="submit"]').click()
        await expect(form).to_be_hidden()
        await say(frame, "Please call me back tomorrow about the price list.")

        price_list: FilePayload = {
            "name": "price list.txt",
            "mimeType": "text/plain",
            "buffer": b"3 nodes?\n",
        }
        await frame.locator('input[type="file"]').set_input_files(files=[price_list])
        sent = messages(frame, "visitor")
        await expect(sent).to_have_count(2)
        await expect(sent.nth(1).locator(".files")).to_contain_text("price list.txt")
        await expect(sent.nth(1)).to_have_attribute("data-status", "sent")

        rows = await site_chat_messages(chat.hub)
        assert [r["text"] for r in rows] == [
            "Please call me back tomorrow about the price list.",
            "",
        ]
        assert [a["name"] for a in rows[1]["attachments"]] == ["price list.txt"]
        conversation_id = rows[0]["conversation_id"]
        conversation = await api_get(chat.hub, f"/api/v1/conversations/{conversation_id}")
        contact = await api_get(chat.hub, f"/api/v1/contacts/{conversation['contact_id']}")
        assert "+79161234567" in json.dumps(contact)
        assert dialogs == []
        await context.close()


async def test_a_verified_user_is_one_visitor_on_every_device(browser: Browser, chat: Chat) -> None:
    # The site's logged-in user, in Russian by the tag: connected at once, not asked for
    # what the site vouched for.
    laptop_context, laptop, dialogs = await visitor_page(browser)
    await laptop.goto(f"{chat.site}/?user=u-42&lang=ru")
    frame = await widget_frame(laptop, online=True)
    await expect(frame.locator("html")).to_have_attribute("lang", "ru")
    await open_widget(laptop, frame)
    await expect(frame.locator('[data-role="prechat"]')).to_be_hidden()
    await expect(frame.locator('[data-role="composer"]')).to_have_attribute(
        "placeholder", "Напишите сообщение…"
    )
    await say(frame, "Мой заказ №1042 ещё не пришёл")
    await expect(messages(frame, "visitor")).to_have_attribute("data-status", "sent")

    # Another browser (a phone) of the same user: the same conversation.
    phone_context, phone, phone_dialogs = await visitor_page(browser, viewport=PHONE)
    await phone.goto(f"{chat.site}/?user=u-42")
    on_phone = await widget_frame(phone, online=True)
    await expect(messages(on_phone, "visitor").locator(".text")).to_have_text(
        "Мой заказ №1042 ещё не пришёл"
    )
    # What one device sends, the other sees live.
    await open_widget(phone, on_phone)
    await say(on_phone, "Трек-номер RA123456789RU")
    await expect(messages(frame, "visitor")).to_have_count(2)
    rows = await site_chat_messages(chat.hub)
    assert len({r["conversation_id"] for r in rows}) == 1

    # A page that vouches with a wrong hash gets no chat, and says why in the console.
    forged_context, forged, _dialogs = await visitor_page(browser)
    console: list[str] = []
    forged.on("console", lambda message: console.append(message.text))
    await forged.goto(f"{chat.site}/?user=u-42&forged=1")
    refused = await widget_frame(forged)
    await expect(refused.locator("body")).to_have_attribute("data-socket", "refused")
    assert any("4401" in line for line in console), console
    await open_widget_refused(forged, refused)
    assert dialogs == []
    assert phone_dialogs == []
    for context in (laptop_context, phone_context, forged_context):
        await context.close()


async def open_widget_refused(page: Page, frame: Frame) -> None:
    """The launcher still opens the panel, which says the chat is not available here."""
    size = page.viewport_size
    assert size is not None
    await page.mouse.click(size["width"] - 48, size["height"] - 48)
    await expect(frame.locator('[data-role="status"]')).to_have_text(
        "The chat is not available on this page."
    )
    await expect(frame.locator('[data-role="composer"]')).to_be_hidden()
