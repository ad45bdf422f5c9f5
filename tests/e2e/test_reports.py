"""The reports page and the deal editor in the browser: each report's table shows the
seeded figures and its chart has a mark per row; the period changes the figures; the
CSV and XLSX exports read back; a manager sees only their own row."""

from __future__ import annotations

import csv
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from openpyxl import load_workbook
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import log_in

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parents[2]


async def call(hub: Hub, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The REST API with the integration token."""
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{hub.url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {hub.token}"},
        ) as response,
    ):
        data = await response.json()
        assert response.status < 300, data
        return data


async def lead(hub: Hub, name: str, channel: str, identity: tuple[str, str]) -> dict[str, Any]:
    return await hub.inbound(
        channel=channel,
        channel_account="salesbot" if channel == "telegram" else "sales@example.test",
        sender={"name": name, "identities": [{"kind": identity[0], "value": identity[1]}]},
        text=f"{name}: нужен кластер",
    )


async def win(hub: Hub, deal_id: int, amount: int) -> None:
    await call(hub, "POST", f"/api/v1/deals/{deal_id}/stage", {"stage": "won", "amount": amount})


class Seeded:
    """Last month: one client won for 40 000. This month: three leads (all Anna's
    conversations), one won by Anna for 100 000, one won by Boris for 50 000, one open."""

    def __init__(self) -> None:
        self.contacts: dict[str, int] = {}
        self.deals: dict[str, int] = {}
        self.last_month: tuple[str, str] = ("", "")


async def seed(hub: Hub) -> Seeded:
    seeded = Seeded()
    now = datetime.now(UTC)
    this_month = now.replace(day=1, hour=9, minute=0, second=0, microsecond=0)
    previous = (this_month - timedelta(days=1)).replace(day=10)
    last_day = this_month - timedelta(days=1)
    seeded.last_month = (previous.replace(day=1).date().isoformat(), last_day.date().isoformat())

    hub.clock.set(previous)
    old = await lead(hub, "Ольга Старая", "telegram", ("telegram", "700"))
    hub.clock.advance(timedelta(hours=2))
    await win(hub, old["deal_id"], 40_000)

    hub.clock.set(this_month)
    one = await lead(hub, "Client One", "telegram", ("telegram", "701"))
    two = await lead(hub, "Client Two", "email", ("email", "two@example.test"))
    three = await lead(hub, "Client Three", "telegram", ("telegram", "703"))
    hub.clock.advance(timedelta(hours=1))
    await win(hub, one["deal_id"], 100_000)
    await call(hub, "PATCH", f"/api/v1/deals/{two['deal_id']}", {"owner_id": hub.managers["boris"]})
    await win(hub, two["deal_id"], 50_000)
    await call(hub, "POST", f"/api/v1/deals/{three['deal_id']}/stage", {"stage": "contact_made"})
    for key, created in (("old", old), ("one", one), ("two", two), ("three", three)):
        seeded.contacts[key] = int(created["contact_id"])
        seeded.deals[key] = int(created["deal_id"])
    return seeded


SAVED = re.compile(r"^(Saved|Сохранено)\.$")


def number(value: int, *, whole: bool = True) -> re.Pattern[str]:
    """``value`` as the page's locale writes it (100,000 or 100 000)."""
    pattern = r"\D?".join(re.findall(r"\d{1,3}(?=(?:\d{3})*$)", str(value)))
    return re.compile(f"^{pattern}$" if whole else pattern)


def cell(page: Page, table: str, row: str, column: str) -> Any:
    return page.locator(f"#{table} tbody tr{row} td[data-col={column}]")


async def export(page: Page, link: str, into: Path) -> Path:
    async with page.expect_download() as info:
        await page.click(link)
    download = await info.value
    target = into / download.suggested_filename
    await download.save_as(target)
    return target


async def test_reports_show_the_seeded_figures_and_export_them(
    browser: Browser, hub: Hub, tmp_path: Path
) -> None:
    seeded = await seed(hub)
    anna, boris = hub.managers["anna"], hub.managers["boris"]
    page = await log_in(browser, hub, "helen", "/reports")
    errors: list[str] = []  # a CSP violation or a script error shows here
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    # Activity, this month: Anna received the three conversations and won 100 000,
    # Boris won 50 000; the chart has one bar of each series per row.
    rows = page.locator("#table-activity tbody tr")
    await expect(rows).to_have_count(2)
    anna_row, boris_row = f'[data-manager-id="{anna}"]', f'[data-manager-id="{boris}"]'
    await expect(cell(page, "table-activity", anna_row, "manager")).to_have_text("Анна Петрова")
    await expect(cell(page, "table-activity", anna_row, "conversations_received")).to_have_text("3")
    await expect(cell(page, "table-activity", anna_row, "deals_won")).to_have_text("1")
    await expect(cell(page, "table-activity", anna_row, "won_amount")).to_have_text(number(100_000))
    await expect(cell(page, "table-activity", boris_row, "conversations_received")).to_have_text(
        "0"
    )
    await expect(cell(page, "table-activity", boris_row, "won_amount")).to_have_text(number(50_000))
    for series in ("received", "answered", "won"):
        await expect(
            page.locator(f'#chart-activity svg rect.bar[data-series="{series}"]')
        ).to_have_count(2)

    await page.screenshot(path=str(tmp_path / "activity.png"))

    # The exports of the same query: the CSV's table and the XLSX's sheet.
    csv_file = await export(page, "#export-csv", tmp_path)
    with csv_file.open(encoding="utf-8-sig", newline="") as handle:
        table = list(csv.DictReader(handle))
    by_manager = {row["manager"]: row for row in table}
    assert by_manager["Анна Петрова"]["conversations_received"] == "3"
    assert float(by_manager["Борис Иванов"]["won_amount"]) == 50_000
    xlsx_file = await export(page, "#export-xlsx", tmp_path)
    book = load_workbook(xlsx_file, read_only=True)
    sheet = book["activity"]
    values = [list(row) for row in sheet.iter_rows(values_only=True)]
    header = values[0]
    found = {row[header.index("manager")]: row for row in values[1:]}
    assert found["Анна Петрова"][header.index("won_amount")] == 100_000
    assert found["Анна Петрова"][header.index("conversations_received")] == 3
    book.close()

    # Last month: only Anna's old client.
    await page.fill("#report-from", seeded.last_month[0])
    await page.fill("#report-to", seeded.last_month[1])
    await expect(page.locator("#report")).to_have_attribute("data-from", seeded.last_month[0])
    await expect(page.locator("#report")).to_have_attribute("data-to", seeded.last_month[1])
    await expect(rows).to_have_count(1)
    await expect(cell(page, "table-activity", anna_row, "conversations_received")).to_have_text("1")
    await expect(cell(page, "table-activity", anna_row, "won_amount")).to_have_text(number(40_000))
    await expect(page.locator('#chart-activity svg rect.bar[data-series="won"]')).to_have_count(1)
    assert seeded.last_month[0] in (await page.get_attribute("#export-xlsx", "href") or "")
    await page.goto(f"{hub.url}/reports")  # the default period again: this month
    await expect(rows).to_have_count(2)

    # The funnel: three deals created this month; two won straight from "new".
    await page.click("#report-tab-funnel")
    consultation = page.locator('.funnel-report[data-funnel="consultation"]')
    await expect(consultation.locator(".summary")).to_contain_text("3")
    stages = consultation.locator("tbody tr")
    await expect(stages).to_have_count(8)
    await expect(consultation.locator("svg rect.stage")).to_have_count(8)
    await expect(
        cell(page, "table-funnel-consultation", '[data-stage="new"]', "reached")
    ).to_have_text("3")
    await expect(
        cell(page, "table-funnel-consultation", '[data-stage="won"]', "reached")
    ).to_have_text("2")
    await page.screenshot(path=str(tmp_path / "funnel.png"))
    funnel_csv = await export(page, "#export-csv", tmp_path)
    with funnel_csv.open(encoding="utf-8-sig", newline="") as handle:
        funnel_rows = {(r["funnel"], r["stage"]): r for r in csv.DictReader(handle)}
    assert funnel_rows[("consultation", "won")]["reached"] == "2"

    # Sources by first touch: Telegram brought 100 000, email 50 000.
    await page.click("#report-tab-sources")
    source_rows = page.locator("#table-sources tbody tr")
    await expect(source_rows).to_have_count(2)
    await expect(cell(page, "table-sources", '[data-value="telegram"]', "revenue")).to_have_text(
        number(100_000)
    )
    await expect(cell(page, "table-sources", '[data-value="telegram"]', "leads")).to_have_text("2")
    await expect(cell(page, "table-sources", '[data-value="email"]', "revenue")).to_have_text(
        number(50_000)
    )
    await expect(page.locator('#chart-sources rect.bar[data-series="revenue"]')).to_have_count(2)
    await expect(page.locator('#chart-sources rect.bar[data-series="leads"]')).to_have_count(2)
    await page.screenshot(path=str(tmp_path / "sources.png"))
    await page.click("#touch-last")
    await expect(page.locator("#touch-last")).to_have_attribute("aria-pressed", "true")
    await expect(cell(page, "table-sources", '[data-value="email"]', "won")).to_have_text("1")

    # ABC/XYZ by client: Client One first; the Pareto curve has a point per client and
    # both guides; the matrix cell of Client One lists them with a link to their page.
    await page.click("#report-tab-abc_xyz")
    items = page.locator("#table-abc tbody tr")
    await expect(items).to_have_count(2)
    first = items.first
    await expect(first.locator("td[data-col=name]")).to_have_text("Client One")
    await expect(first.locator("td[data-col=revenue]")).to_have_text(number(100_000))
    await expect(page.locator("#chart-pareto svg circle.point")).to_have_count(2)
    await expect(page.locator("#chart-pareto svg line.guide")).to_have_count(2)
    abc = (await first.locator("td[data-col=abc]").inner_text()).strip()
    xyz = (await first.locator("td[data-col=xyz]").inner_text()).strip()
    target = page.locator(
        f'#chart-matrix g.cell[data-abc="{abc}"][data-xyz="{"-" if xyz == "—" else xyz}"]'
    )
    await target.click()
    link = page.locator(f'#abc-cell-list a[href="/contacts/{seeded.contacts["one"]}"]')
    await expect(link).to_have_text("Client One")
    xlsx_abc = await export(page, "#export-xlsx", tmp_path)
    book = load_workbook(xlsx_abc, read_only=True)
    assert book.sheetnames == ["abc_xyz", "matrix"]
    abc_rows = [list(r) for r in book["abc_xyz"].iter_rows(values_only=True)]
    assert abc_rows[1][abc_rows[0].index("name")] == "Client One"
    assert abc_rows[1][abc_rows[0].index("revenue")] == 100_000
    book.close()

    assert errors == []
    shot = tmp_path / "reports.png"
    await page.set_viewport_size({"width": 1280, "height": 1000})
    await page.screenshot(path=str(shot))
    if os.environ.get("OMNIHUB_SCREENSHOT") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "reports.png")
    await page.context.close()

    # A manager sees only their own row.
    mine = await log_in(browser, hub, "anna", "/reports")
    await expect(mine.locator("#table-activity tbody tr")).to_have_count(1)
    await expect(
        mine.locator(f'#table-activity tbody tr[data-manager-id="{anna}"]')
    ).to_be_visible()
    await expect(mine.locator("#report-manager")).to_have_count(0)
    await expect(mine.locator('#chart-activity svg rect.bar[data-series="won"]')).to_have_count(1)
    await mine.context.close()


async def test_editing_a_deal_amount_persists(browser: Browser, hub: Hub, tmp_path: Path) -> None:
    created = await lead(hub, "Пётр", "telegram", ("telegram", "42"))
    other = await lead(hub, "Мария", "telegram", ("telegram", "43"))
    deal_id = int(created["deal_id"])
    page = await log_in(browser, hub, "helen", "/board?funnel=consultation")
    card = page.locator(f'#board li.deal[data-id="{deal_id}"]')
    await card.locator("button.edit-deal").click()
    dialog = page.locator("#deal-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("#deal-history")).to_be_visible()
    await dialog.locator("#deal-amount").fill("125000")
    await dialog.locator("#deal-owner").select_option(str(hub.managers["boris"]))
    await dialog.locator("#deal-save").click()
    await expect(dialog.locator("#deal-status")).to_have_text(SAVED)
    await expect(dialog.locator('#deal-history li[data-field="amount"]')).to_be_visible()
    await page.screenshot(path=str(tmp_path / "deal.png"))
    deal = await call(hub, "GET", f"/api/v1/deals/{deal_id}")
    assert deal["amount"] == "125000.00"
    assert deal["owner_id"] == hub.managers["boris"]
    assert any(
        change["field"] == "amount" and change["new"] == "125000"
        for entry in deal["history"]
        for change in (entry["details"] or {}).get("changes", [])
    )
    await dialog.locator("#deal-close").click()
    await expect(dialog).to_be_hidden()
    await expect(card.locator(".amount")).to_contain_text(number(125_000, whole=False))
    await page.context.close()

    # A manager edits their deal from the contact page, without the owner field.
    other_id = int(other["deal_id"])
    anna = await log_in(browser, hub, "anna", f"/contacts/{other['contact_id']}")
    await anna.locator(f'li.deal-item[data-deal-id="{other_id}"] button.edit-deal').click()
    await expect(anna.locator("#deal-dialog")).to_be_visible()
    await expect(anna.locator("#deal-owner")).to_have_count(0)
    await anna.locator("#deal-title").fill("Кластер Redis на год")
    await anna.locator("#deal-amount").fill("9900")
    await anna.locator("#deal-save").click()
    await expect(anna.locator("#deal-status")).to_have_text(SAVED)
    deal = await call(hub, "GET", f"/api/v1/deals/{other_id}")
    assert deal["title"] == "Кластер Redis на год"
    assert deal["amount"] == "9900.00"
    await anna.context.close()
