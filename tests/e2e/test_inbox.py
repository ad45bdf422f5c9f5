"""The inbox end to end in Chromium: log in, a new conversation arrives live, the reply
leaves through the outbox for the conversation's channel, and the head's reassignment
reaches the manager's list without a reload."""

from __future__ import annotations

import os
import re
import shutil
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, BrowserContext, Page, WebSocketRoute, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.models import Message, OutboxMessage
from tests.e2e.conftest import PASSWORD, WAIT_MS, Hub

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(180)


async def log_in(
    browser: Browser,
    hub: Hub,
    who: str,
    path: str = "/inbox",
    context: BrowserContext | None = None,
) -> Page:
    if context is None:
        context = await new_context(browser)
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{hub.url}{path}")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.fill("#email", hub.emails[who])
    await page.fill("#password", PASSWORD)
    await page.click("form.login-card button[type=submit]")
    # Back where we started (the page may tidy its query string with replaceState).
    target = hub.url + urlsplit(path).path
    await expect(page).to_have_url(re.compile(f"^{re.escape(target)}(\\?|$)"))
    await expect(page.locator("#top .me")).to_be_visible()
    return page


async def new_context(browser: Browser) -> BrowserContext:
    return await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")


async def seed(hub: Hub) -> None:
    """A few earlier conversations, so that the inbox looks like a working day."""
    await hub.inbound(
        channel="email",
        channel_account="sales",
        sender={
            "name": "Ольга Кузнецова",
            "identities": [{"kind": "email", "value": "olga@example.ru"}],
        },
        text="Добрый день! Пришлите, пожалуйста, договор и счёт на кластер ClickHouse.",
    )
    hub.clock.advance(timedelta(minutes=17))
    await hub.inbound(
        channel="site_chat",
        channel_account="website",
        sender={"name": "Dmitry", "identities": [{"kind": "site_visitor", "value": "v-93fd"}]},
        text="Do you offer a free trial of managed Kafka?",
    )
    hub.clock.advance(timedelta(minutes=24))
    await hub.inbound(
        channel="form",
        channel_account="landing-pg",
        sender={"name": "Сергей", "identities": [{"kind": "phone", "value": "8 (903) 555-12-34"}]},
        text="Заявка с лендинга: нужна консультация по миграции на PostgreSQL 16",
        attribution={"utm_source": "yandex", "utm_campaign": "pg-migration"},
    )
    hub.clock.advance(timedelta(minutes=31))


async def test_manager_works_a_conversation_live(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    await seed(hub)
    anna = await log_in(browser, hub, "anna")
    dialogs: list[str] = []
    anna.on("dialog", lambda dialog: dialogs.append(dialog.message))

    # The language switch writes the manager's locale and reloads in it.
    await anna.select_option("#locale", "en")
    await expect(anna.locator("#view-mine")).to_contain_text("Mine")
    await expect(anna.locator("html")).to_have_attribute("lang", "en")

    # From here on the page must never reload: a marker on window would be lost.
    await anna.evaluate("window.__still_here = true")

    hub.clock.advance(timedelta(minutes=5))
    created = await hub.inbound(
        channel="telegram",
        channel_account="salesbot",
        sender={
            "name": "Мария Соколова",
            "company": "ООО «Ромашка»",
            "identities": [
                {"kind": "telegram", "value": "500100200"},
                {"kind": "phone", "value": "+7 916 123-45-67"},
            ],
        },
        text="Здравствуйте! Сколько стоит управляемый кластер PostgreSQL на 3 узла?",
        attribution={"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "pg-clusters"},
    )
    conversation_id = created["conversation_id"]
    assert created["assignee_id"] == hub.managers["anna"]

    item = anna.locator(f'#conversations button.conv[data-id="{conversation_id}"]')
    await expect(item).to_be_visible()
    await expect(item).to_contain_text("Мария Соколова")
    await expect(anna.locator("#view-mine .badge")).to_have_text("4")

    await item.click()
    await expect(anna.locator("#timeline .msg-in").last).to_contain_text("Сколько стоит")
    await expect(anna.locator("#routing-reason")).to_be_visible()
    await expect(anna.locator("#contact-card")).to_contain_text("500100200")
    await expect(anna.locator("#contact-card")).to_contain_text("pg-clusters")
    # Opening it marks it read: one conversation fewer with unread messages.
    await expect(item).not_to_have_class(re.compile(r"\bunread\b"))
    await expect(anna.locator("#view-mine .badge")).to_have_text("3")

    hub.clock.advance(timedelta(minutes=2))
    reply = "Добрый день, Мария! Кластер на 3 узла — от 24 000 ₽ в месяц. Созвонимся?"
    await anna.fill("#reply-text", reply)
    await anna.click("#send")
    sent = anna.locator("#timeline .msg-out", has_text="Созвонимся?")
    await expect(sent).to_be_visible()
    await expect(anna.locator("#reply-text")).to_have_value("")

    # The reply is in the outbox for the conversation's own channel: Telegram.
    def queued(session: Session) -> list[tuple[str, int]]:
        rows = session.scalars(select(OutboxMessage).where(OutboxMessage.topic.like("send.%")))
        return [(row.topic, int(row.payload["conversation_id"])) for row in rows]

    assert await hub.db.read(queued) == [("send.telegram", conversation_id)]
    # ... and the relay hands it to the Telegram sender; the page hears it went out.
    await expect(sent.locator(".delivery")).to_have_text("sent")
    assert [m.text for m in hub.telegram.sent] == [reply]
    assert hub.telegram.sent[0].channel_account == "salesbot"

    await anna.fill("#reply-text", "Клиент просил перезвонить после 15:00")
    await anna.click("#add-note")
    await expect(anna.locator("#timeline .msg-note")).to_contain_text("после 15:00")

    def notes(session: Session) -> int:
        return len(list(session.scalars(select(Message).where(Message.direction == "note"))))

    assert await hub.db.read(notes) == 1
    assert len(hub.telegram.sent) == 1  # a note never leaves the house

    shot = tmp_path / "inbox.png"
    await anna.screenshot(path=str(shot))
    if os.environ.get("OMNIHUB_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "inbox.png")

    # The head hands the conversation to Boris; Anna's list drops it, live.
    helen = await log_in(browser, hub, "helen", f"/inbox?view=all&c={conversation_id}")
    await expect(helen.locator("#conv-assignee")).to_contain_text("Анна Петрова")
    await helen.select_option("#assign-to", str(hub.managers["boris"]))
    await helen.click("#assign")
    await expect(helen.locator("#conv-assignee")).to_contain_text("Борис Иванов")

    await expect(item).to_have_count(0)
    await expect(anna.locator("#conversation")).to_contain_text("handed to someone else")
    assert await anna.evaluate("window.__still_here") is True
    assert dialogs == []
    await helen.context.close()
    await anna.context.close()


async def test_wrong_password_is_refused(browser: Browser, hub: Hub) -> None:
    context = await browser.new_context(locale="ru-RU")
    page = await context.new_page()
    page.set_default_timeout(WAIT_MS)
    await page.goto(f"{hub.url}/board")
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await page.fill("#email", hub.emails["anna"])
    await page.fill("#password", "wrong")
    await page.click("form.login-card button[type=submit]")
    await expect(page.locator("#login-error")).to_have_text("Неверная почта или пароль.")
    await page.fill("#password", PASSWORD)
    await page.click("form.login-card button[type=submit]")
    await expect(page).to_have_url(f"{hub.url}/board")
    await expect(page.locator("#board .column").first).to_be_visible()
    await context.close()


async def test_reply_through_another_channel_and_live_after_a_dropped_socket(
    browser: Browser, hub: Hub
) -> None:
    """The manager answers a Telegram client by email; the live socket, cut by the network,
    comes back by itself and the page catches up."""
    first = await hub.inbound(
        channel="telegram",
        channel_account="salesbot",
        sender={
            "name": "Игорь",
            "identities": [
                {"kind": "telegram", "value": "700"},
                {"kind": "email", "value": "igor@example.ru"},
            ],
        },
        text="Пришлите КП на почту, пожалуйста",
    )
    hub.clock.advance(timedelta(minutes=1))
    mail = await hub.inbound(
        channel="email",
        channel_account="sales",
        sender={"name": "Игорь", "identities": [{"kind": "email", "value": "igor@example.ru"}]},
        text="Дублирую письмом",
    )
    assert mail["contact_id"] == first["contact_id"]

    sockets: list[WebSocketRoute] = []

    async def through(route: WebSocketRoute) -> None:
        route.connect_to_server()
        sockets.append(route)

    context = await new_context(browser)
    await context.route_web_socket(re.compile(r"/api/v1/live$"), through)
    page = await log_in(browser, hub, "anna", f"/inbox?c={first['conversation_id']}", context)
    await expect(page.locator("#timeline .msg-in")).to_have_count(2)  # both channels
    await expect(page.locator("body")).to_have_attribute("data-live", "online")
    assert len(sockets) == 1

    await page.select_option("#reply-account", "sales")
    await page.fill("#reply-text", "Отправил КП на igor@example.ru")
    await page.click("#send")
    await expect(page.locator("#timeline .msg-out")).to_contain_text("Отправил КП")

    def topics(session: Session) -> list[str]:
        rows = session.scalars(
            select(OutboxMessage.topic).where(OutboxMessage.topic.like("send.%"))
        )
        return list(rows)

    assert await hub.db.read(topics) == ["send.email"]

    # The network drops the socket: the page says so, reconnects, and re-fetches.
    await page.evaluate("window.__still_here = true")
    await sockets[0].close(code=1006, reason="network")
    await expect(page.locator("body")).to_have_attribute("data-live", "offline")
    await expect(page.locator("body")).to_have_attribute("data-live", "online")
    assert len(sockets) == 2
    hub.clock.advance(timedelta(minutes=1))
    later = await hub.inbound(
        channel="site_chat",
        channel_account="website",
        sender={"name": "Новый клиент", "identities": [{"kind": "site_visitor", "value": "v-1"}]},
        text="Здравствуйте",
    )
    await expect(
        page.locator(f'#conversations button.conv[data-id="{later["conversation_id"]}"]')
    ).to_be_visible()
    assert await page.evaluate("window.__still_here") is True
    await context.close()
