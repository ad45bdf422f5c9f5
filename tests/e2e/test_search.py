"""The search box in the header, in Chromium: a message by a word of another form, a
contact by a phone typed another way, each hit opening its page; a manager finds only
their own; a client's markup in a hit stays text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import log_in

pytestmark = pytest.mark.timeout(120)


async def test_search_finds_a_message_and_a_contact_and_opens_them(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    created = await hub.inbound(
        channel="telegram",
        channel_account="salesbot",
        sender={
            "name": "<img src=x onerror=alert(1)> Пётр",
            "identities": [{"kind": "phone", "value": "+7 916 555-44-33"}],
        },
        text="Нужна консультация по кластеру Redis",
    )
    page = await log_in(browser, hub, "anna")
    box = page.locator("#search")
    await box.fill("кластеры")
    results = page.locator("#search-results")
    await expect(results).to_be_visible()
    hit = results.locator("a.search-hit").first
    await expect(hit).to_contain_text("консультация по кластеру Redis")
    await expect(hit.locator("mark")).to_have_text("кластеру")
    await expect(hit).to_contain_text("<img src=x onerror=alert(1)> Пётр")  # as text
    assert await results.locator("img").count() == 0
    await page.screenshot(path=str(tmp_path / "search.png"))
    await hit.click()
    await expect(page).to_have_url(f"{hub.url}/inbox?c={created['conversation_id']}")
    await expect(page.locator("#timeline .msg-in").last).to_contain_text("кластеру Redis")

    await page.locator("#search").fill("8 916 555 44 33")
    contact = page.locator("#search-results a.search-hit").first
    await expect(contact).to_contain_text("+79165554433")
    await page.locator("#search").press("Enter")
    await expect(page).to_have_url(f"{hub.url}/contacts/{created['contact_id']}")
    await page.context.close()

    # Boris is not Anna: the same words find nothing of hers
    boris = await log_in(browser, hub, "boris")
    await boris.locator("#search").fill("кластеры")
    nothing = re.compile("Nothing found|Ничего не найдено")
    await expect(boris.locator("#search-results")).to_contain_text(nothing)
    await boris.context.close()
