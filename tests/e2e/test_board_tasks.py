"""The funnel board and the task list in the browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import log_in

pytestmark = pytest.mark.timeout(120)


async def test_deal_moves_between_stages_and_task_completes(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    created = await hub.inbound(
        channel="telegram",
        channel_account="salesbot",
        sender={"name": "Пётр", "identities": [{"kind": "telegram", "value": "42"}]},
        text="Нужна консультация по кластеру Redis",
    )
    deal_id = created["deal_id"]
    page = await log_in(browser, hub, "anna", "/board?funnel=consultation")
    card = page.locator(f'#board li.deal[data-id="{deal_id}"]')
    await expect(card).to_be_visible()
    first = page.locator("#board .column").first
    await expect(first.locator(f'li.deal[data-id="{deal_id}"]')).to_have_count(1)
    second = page.locator("#board .column").nth(1)
    target = await second.get_attribute("data-stage")
    assert target
    await card.locator("select.move").select_option(target)
    await expect(second.locator(f'li.deal[data-id="{deal_id}"]')).to_have_count(1)
    await expect(first.locator(f'li.deal[data-id="{deal_id}"]')).to_have_count(0)
    await page.screenshot(path=str(tmp_path / "board.png"))

    await page.click('nav a[href="/tasks"]')
    task = page.locator(f'#tasks li.task[data-id="{created["task_id"]}"]')
    await expect(task).to_be_visible()
    await page.screenshot(path=str(tmp_path / "tasks.png"))
    await task.locator("button.complete").click()
    await expect(task).to_have_count(0)
    await page.select_option("#task-status", "done")
    await expect(page.locator(f'#tasks li.task[data-id="{created["task_id"]}"]')).to_be_visible()

    # The contact's page: the card beside the whole history.
    await page.goto(f"{hub.url}/contacts/{created['contact_id']}")
    await expect(page.locator("#timeline .msg-in")).to_contain_text("кластеру Redis")
    await expect(page.locator("#contact-card")).to_contain_text("42")
    await page.context.close()
