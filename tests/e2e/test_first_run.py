"""The first run in Chromium: the one-time link's page creates the first admin, who lands
logged in; the link is then spent."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from crm_core.first_run import issue_setup_token
from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import new_context

pytestmark = pytest.mark.timeout(120)


async def test_the_setup_link_creates_the_admin_who_lands_logged_in(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    # the hub's people have no admin: a start's link, made anew here to know its token
    token = await hub.db.write(
        partial(issue_setup_token, now=hub.clock.now(), valid_for=timedelta(minutes=60))
    )
    assert token is not None
    context = await new_context(browser)
    page = await context.new_page()
    await page.goto(f"{hub.url}/setup#{token}")
    await expect(page.locator("#setup-form")).to_be_visible()
    assert token not in page.url  # taken off the address bar
    await page.fill("#name", "Ольга Админова")
    await page.fill("#email", "olga.admin@example.test")
    await page.fill("#password", "correct horse battery")
    await page.fill("#repeat", "correct horse battery!")
    await page.click("#setup-form button[type=submit]")
    await expect(page.locator("#setup-error")).to_contain_text("differ")
    await page.fill("#repeat", "correct horse battery")
    await page.click("#setup-form button[type=submit]")
    await expect(page.locator("#setup-done")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "setup.png"))
    await page.click("#open-inbox")
    await expect(page).to_have_url(f"{hub.url}/inbox")
    await expect(page.locator("#me")).to_contain_text("Ольга Админова")
    await context.close()

    again = await (await new_context(browser)).new_page()
    await again.goto(f"{hub.url}/setup#{token}")
    await again.fill("#name", "Someone")
    await again.fill("#email", "someone@example.test")
    await again.fill("#password", "another long secret")
    await again.fill("#repeat", "another long secret")
    await again.click("#setup-form button[type=submit]")
    await expect(again.locator("#setup-error")).to_contain_text("already")
    await again.context.close()
