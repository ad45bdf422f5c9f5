"""An XSS probe in the real browser: what clients send is shown as text and runs nothing.

Payloads set ``window.__pwned`` or open a dialog if they ever run: in a client message, in
a client's name, in an attachment link, and in an HTML email (which the hub sanitizes with
nh3 and the page shows only inside a sandboxed iframe without scripts).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from playwright.async_api import Browser, Locator, expect
from playwright.async_api import Error as PlaywrightError

from crm_core.contracts import Attachment, IdentityRef, InboundMessage
from crm_core.enums import Channel, IdentityKind
from hub.files import FILES
from hub.keys import INGEST
from tests.e2e.conftest import Hub
from tests.e2e.test_inbox import log_in

pytestmark = pytest.mark.timeout(120)

IMG = '<img src=x onerror="window.__pwned=1;alert(1)">'
NAME = "<script>window.__pwned=2</script>Eve"
EMAIL_TEXT = "<script>window.__pwned=3</script> Please see the offer."
EMAIL_HTML = (
    "<html><body><p>Offer for <b>PostgreSQL</b></p>"
    "<script>window.__pwned=4;alert(4)</script>"
    '<img src=x onerror="window.__pwned=5">'
    '<a href="javascript:window.__pwned=6">click</a>'
    "</body></html>"
)


async def test_client_content_is_inert(browser: Browser, hub: Hub) -> None:
    chat = await hub.inbound(
        channel="telegram",
        channel_account="salesbot",
        sender={"name": NAME, "identities": [{"kind": "telegram", "value": "666"}]},
        text=IMG,
        attachments=[
            {"name": "x.png", "content_type": "image/png", "size": 3, "url": "javascript:alert(7)"}
        ],
    )
    html = EMAIL_HTML.encode()
    key = await hub.app[FILES].default.put(html, "html")
    mail = await hub.app[INGEST].ingest(
        InboundMessage(
            channel=Channel.EMAIL,
            channel_account="sales",
            external_id="<probe@example.test>",
            identities=(IdentityRef(IdentityKind.EMAIL, "eve@example.test"),),
            occurred_at=datetime.now(UTC),
            display_name="Eve Mailer",
            text=EMAIL_TEXT,
            attachments=(Attachment("message.html", "text/html", len(html), storage_key=key),),
        )
    )

    page = await log_in(browser, hub, "anna")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    # The name and the text show literally, in the list and in the conversation.
    item = page.locator(f'#conversations button.conv[data-id="{chat["conversation_id"]}"]')
    await expect(item.locator(".name")).to_have_text(NAME)
    await expect(item.locator(".snippet")).to_have_text(IMG)
    await item.click()
    text = page.locator("#timeline .msg-in .text").last
    await expect(text).to_have_text(IMG)
    await expect(page.locator("#contact-card h2")).to_have_text(NAME)
    assert await page.locator("#timeline img").count() == 0
    link = page.locator("#timeline .attachments a")
    await expect(link).to_have_count(1)
    href = await link.get_attribute("href")
    assert href is not None
    assert href.startswith("/api/v1/"), href

    # The HTML email: sanitized by the hub, then only inside an empty sandbox.
    await page.click(f'#conversations button.conv[data-id="{mail.conversation_id}"]')
    frame = page.locator("#timeline iframe.email-html")
    await expect(frame).to_have_count(1)
    assert await frame.get_attribute("sandbox") == ""
    srcdoc = await frame.evaluate("f => f.srcdoc")
    assert "Offer for" in srcdoc
    assert "<script" not in srcdoc.lower()
    assert "onerror" not in srcdoc.lower()
    assert "javascript:" not in srcdoc.lower()
    await expect(page.frame_locator("#timeline iframe.email-html").locator("body")).to_contain_text(
        "Offer for PostgreSQL"
    )
    # The plain-text part, with its script tag, is text too.
    await page.click("#timeline .msg-in button.link")
    await expect(page.locator("#timeline .msg-in .text").last).to_have_text(EMAIL_TEXT)

    # Nothing ran: not in the page, not in the frame; no dialog opened.
    assert await page.evaluate("typeof window.__pwned") == "undefined"
    # (the frame may be drawn anew by a live update meanwhile: ask the current one)
    inside = page.frame_locator("#timeline iframe.email-html").locator("body")
    assert await _settled(inside, "() => typeof window.__pwned") == "undefined"
    assert dialogs == []
    assert errors == []
    await page.context.close()


async def _settled(locator: Locator, script: str) -> object:
    """``script`` in the element's frame, again if the frame was replaced while it ran
    (Playwright says 'detached', or, for a sandboxed frame Chromium ran as a target of its
    own, that the target 'has been closed')."""
    for attempt in range(5):
        try:
            return await locator.evaluate(script)
        except PlaywrightError as exc:
            replaced = "detached" in str(exc) or "has been closed" in str(exc)
            if not replaced or attempt == 4:
                raise
    raise AssertionError("unreachable")


RLO = "\u202e"
SPOOF_NAME = f"Eve{RLO} gnp.exe"
SPOOF_FILE = f"invoice{RLO}gnp.exe.html"
# Where each character of an element's first text node is drawn, left to right.
DRAWN_AT = """(element) => {
  const node = element.firstChild;
  const left = (i) => {
    const range = document.createRange();
    range.setStart(node, i);
    range.setEnd(node, i + 1);
    return range.getBoundingClientRect().left;
  };
  return Array.from(node.data, (_, i) => left(i));
}"""


async def test_bidi_controls_in_names_cannot_reorder_the_page(browser: Browser, hub: Hub) -> None:
    page_bytes = b"<p>not really an invoice</p>"
    key = await hub.app[FILES].default.put(page_bytes, "files")
    mail = await hub.app[INGEST].ingest(
        InboundMessage(
            channel=Channel.EMAIL,
            channel_account="sales",
            external_id="<bidi@example.test>",
            identities=(IdentityRef(IdentityKind.EMAIL, "eve@example.test"),),
            occurred_at=datetime.now(UTC),
            display_name=SPOOF_NAME,
            text="Please pay the attached invoice.",
            attachments=(Attachment(SPOOF_FILE, "text/html", len(page_bytes), storage_key=key),),
        )
    )

    page = await log_in(browser, hub, "anna")
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    shown = "Eve\u27e8U+202E\u27e9 gnp.exe"

    # The name: isolated, its override spelled out, the real name in the tooltip.
    item = page.locator(f'#conversations button.conv[data-id="{mail.conversation_id}"]')
    name = item.locator(".name bdi")
    await expect(name).to_have_text(shown)
    assert await name.get_attribute("dir") == "auto"
    assert await name.get_attribute("title") == shown
    await item.click()
    heads = ("#conversation .conv-head h2 bdi", "#contact-card h2 bdi", "#timeline .author bdi")
    for where in heads:
        await expect(page.locator(where)).to_have_text(shown)
        assert "U+202E" in (await page.locator(where).get_attribute("title") or "")
    assert await page.locator("#timeline .msg-in .text").get_attribute("dir") == "auto"

    # The file: "invoice⟨U+202E⟩gnp.exe.html (28 B)", drawn in that order.
    link = page.locator("#timeline .attachments a")
    await expect(link).to_have_count(1)
    file_name = link.locator("bdi")
    assert await file_name.get_attribute("title") == "invoice\u27e8U+202E\u27e9gnp.exe.html"
    visible = await file_name.evaluate("e => e.innerText")
    assert RLO not in visible
    assert visible.endswith(".html"), visible
    assert (await link.evaluate("e => e.innerText")).endswith(".html (28 B)")
    drawn: list[float] = await file_name.evaluate(DRAWN_AT)
    assert drawn == sorted(drawn), list(zip(visible, drawn, strict=True))
    size_at = await link.evaluate(
        """(link) => {
          const range = document.createRange();
          range.selectNodeContents(link.lastChild);
          return range.getBoundingClientRect().left;
        }"""
    )
    assert size_at >= max(drawn), (size_at, drawn)

    # No raw override anywhere on the page; the save dialog gets the safe name.
    assert RLO not in await page.evaluate("document.body.innerText")
    async with page.expect_download() as downloading:
        await link.click()
    download = await downloading.value
    assert download.suggested_filename == "invoice_gnp.exe.html"
    assert errors == []
    await page.context.close()
