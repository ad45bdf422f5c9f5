"""The calls page in the browser: it lists the seeded calls (each linking to its contact),
filters them by direction, and the contact card's Call button shows why the hub cannot
call (no SIP telephony here); the reports page has the calls per manager."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from sqlalchemy.orm import Session

from crm_core.models import ChannelAccount, Conversation
from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import log_in
from tests.integration.test_calls_list import add_call

pytestmark = pytest.mark.timeout(120)


async def _seed(hub: Hub) -> dict[str, Any]:
    made = [
        await hub.inbound(
            channel="api",
            channel_account="website",
            sender={"name": name, "identities": [{"kind": "phone", "value": number}]},
            text="Позвоните мне",
        )
        for name, number in (("Ирина", "+79160000001"), ("Олег", "+79160000002"))
    ]
    anna = hub.managers["anna"]
    now = datetime.now(UTC).replace(microsecond=0)

    def work(session: Session) -> dict[str, int]:
        office = ChannelAccount(channel="phone", key="office", title="Office", created_at=now)
        session.add(office)
        session.flush()
        irina = session.get(Conversation, made[0]["conversation_id"])
        oleg = session.get(Conversation, made[1]["conversation_id"])
        assert irina is not None
        assert oleg is not None
        at = office.id
        calls = {
            "in_answered": add_call(
                session,
                irina,
                "e1",
                now - timedelta(hours=3),
                manager_id=anna,
                ring=7,
                talk=95,
                account_id=at,
            ),
            "in_missed": add_call(
                session, oleg, "e2", now - timedelta(hours=2), disposition="missed", account_id=at
            ),
            "out": add_call(
                session,
                oleg,
                "e3",
                now - timedelta(hours=1),
                direction="out",
                manager_id=anna,
                ring=4,
                talk=30,
                account_id=at,
            ),
        }
        return {name: call.id for name, call in calls.items()}

    ids = await hub.db.write(work)
    return {"calls": ids, "irina": made[0]["contact_id"], "oleg": made[1]["contact_id"]}


async def test_the_calls_page_lists_and_filters_calls(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    seeded = await _seed(hub)
    calls = seeded["calls"]
    page = await log_in(browser, hub, "helen", "/calls")
    rows = page.locator("#calls tbody tr.call")
    await expect(rows).to_have_count(3)
    # newest first
    assert [await r.get_attribute("data-id") for r in await rows.all()] == [
        str(calls["out"]),
        str(calls["in_missed"]),
        str(calls["in_answered"]),
    ]
    answered = page.locator(f'#calls tr.call[data-id="{calls["in_answered"]}"]')
    await expect(answered.locator('td[data-col="contact"] a')).to_have_text("Ирина")
    href = await answered.locator('td[data-col="contact"] a').get_attribute("href")
    assert href == f"/contacts/{seeded['irina']}"
    await expect(answered.locator('td[data-col="talk"]')).to_have_text("1:35")
    await expect(answered.locator('td[data-col="manager"]')).to_have_text("Анна Петрова")
    missed = page.locator(f'#calls tr.call[data-id="{calls["in_missed"]}"]')
    await expect(missed.locator('td[data-col="outcome"]')).to_have_text(
        "пропущен"
    )  # the managers work in Russian
    await page.screenshot(path=str(tmp_path / "calls.png"))

    await page.select_option("#calls-direction", "out")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", str(calls["out"]))
    await expect(page).to_have_url(f"{hub.url}/calls?direction=out")
    await page.select_option("#calls-direction", "in")
    await expect(rows).to_have_count(2)
    await page.select_option("#calls-disposition", "missed")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-id", str(calls["in_missed"]))

    # The row's link opens the contact; its Call button says why the hub cannot call.
    await missed.locator('td[data-col="contact"] a').click()
    await expect(page).to_have_url(f"{hub.url}/contacts/{seeded['oleg']}")
    await page.click("#call-contact")
    await expect(page.locator("#call-status")).to_contain_text("telephony is not running")
    await page.screenshot(path=str(tmp_path / "contact-call.png"))

    # The reports page's calls tab: Anna's row.
    days = f"from={(datetime.now(UTC) - timedelta(days=1)).date()}"
    days += f"&to={(datetime.now(UTC) + timedelta(days=1)).date()}"
    await page.goto(f"{hub.url}/reports?report=calls&{days}")
    anna = page.locator(f'#table-calls tr[data-manager-id="{hub.managers["anna"]}"]')
    await expect(anna.locator('td[data-col="calls_in"]')).to_have_text("1")
    await expect(anna.locator('td[data-col="calls_missed"]')).to_have_text("1")
    await page.screenshot(path=str(tmp_path / "reports-calls.png"))
    await page.context.close()
