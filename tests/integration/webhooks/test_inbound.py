"""Inbound webhooks through the real app: each platform's documented sample payloads
become a contact, a deal in the source's funnel, attribution and a first task."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import (
    AuditEntry,
    Call,
    ChannelCheckpoint,
    Contact,
    ContactIdentity,
    Conversation,
    Deal,
    Funnel,
    Message,
    OutboxMessage,
    Task,
    Touch,
)
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers
from tests.integration.raw_http import LATIN1_BYTES, raw_request
from webhooks.signatures import standard_headers
from webhooks.zadarma import signature as zadarma_signature

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
STANDARD_SECRET = "whsec_" + base64.b64encode(b"standard-webhooks-test-secret!!").decode()
APP_SECRET = "meta-app-secret"
META_LEAD = {
    # The Graph API's documented lead shape.
    "created_time": "2015-02-28T08:49:14+0000",
    "id": "444444444444",
    "ad_id": "555",
    "ad_name": "Spring ad",
    "campaign_id": "777",
    "campaign_name": "spring-sale",
    "form_id": "444444444444",
    "is_organic": False,
    "platform": "fb",
    "field_data": [
        {"name": "car_make", "values": ["Honda"]},
        {"name": "full_name", "values": ["Joe Example"]},
        {"name": "email", "values": ["joe@example.com"]},
        {"name": "selected_dealer", "values": ["99213450"]},
    ],
}


@dataclass
class Graph:
    url: str
    requests: list[tuple[str, dict[str, str]]]


@pytest.fixture
async def graph() -> AsyncIterator[Graph]:
    """A local stand-in for the Graph API."""
    seen: list[tuple[str, dict[str, str]]] = []

    async def lead(request: web.Request) -> web.Response:
        seen.append((request.match_info["id"], dict(request.query)))
        if request.query.get("access_token") != "graph-token":
            return web.json_response({"error": {"message": "bad token", "code": 190}}, status=400)
        if request.match_info["id"] != META_LEAD["id"]:
            return web.json_response({"error": {"message": "unknown", "code": 100}}, status=404)
        return web.json_response(META_LEAD)

    app = web.Application()
    app.router.add_get("/v21.0/{id}", lead)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield Graph(str(server.make_url("/v21.0")), seen)
    finally:
        await server.close()


def _settings(database_url: str, graph_url: str) -> Settings:
    sources: list[dict[str, Any]] = [
        {"key": "landing-pg", "kind": "form", "secret": "form-token", "funnel": "landing"},
        {
            "key": "landing-hmac",
            "kind": "form",
            "secret": "hmac-secret",
            "signing": "hmac",
            "fields": {"name": "your_name", "phone": "tel"},
        },
        {"key": "tilda-main", "kind": "tilda", "api_key": "tilda-key", "funnel": "webinar"},
        {"key": "google", "kind": "google_ads", "google_key": "theGoogleKey"},
        {"key": "vk-group", "kind": "vk", "confirmation": "a1b2c3d4", "secret": "vk-secret"},
        {
            "key": "meta",
            "kind": "meta",
            "app_secret": APP_SECRET,
            "verify_token": "meta-verify",
            "access_token": "graph-token",
            "graph_base": graph_url,
        },
        {"key": "yaforms", "kind": "yandex_forms", "secret": "ya-token"},
        {"key": "zadarma", "kind": "zadarma", "api_secret": "zd-secret"},
        {"key": "partner", "kind": "standard", "secret": STANDARD_SECRET},
    ]
    return Settings(
        database_url=database_url,
        max_body_bytes=32 * 1024,
        channels={"webhooks": {"sources": sources, "dedup_window_seconds": 600}},
    )


@pytest.fixture
async def hub(
    database_url: str,
    db: Database,
    clock: ManualClock,
    graph: Graph,
    aiohttp_client: ClientFactory,
) -> TestClient[Any, Any]:
    clock.set(NOW)
    await add_managers(db, 2)
    return await aiohttp_client(create_app(_settings(database_url, graph.url), clock=clock))


@dataclass
class Lead:
    name: str | None
    identities: set[tuple[str, str]]
    funnel: str
    touch: Touch
    task_kind: str | None  # None: no task (an answered call needs no call back)
    task_due: datetime | None
    text: str
    channel_account: str


async def _lead(db: Database, account: str) -> Lead:
    """The one deal opened by the lead of ``account``, with what hangs off it."""

    def work(session: Session) -> Lead:
        touch = session.scalars(
            select(Touch).where(Touch.channel_account == account).order_by(Touch.id)
        ).one()
        contact = session.get(Contact, touch.contact_id)
        assert contact is not None
        deal = session.scalars(select(Deal).where(Deal.contact_id == contact.id)).one()
        funnel = session.get(Funnel, deal.funnel_id)
        assert funnel is not None
        task = session.scalars(select(Task).where(Task.deal_id == deal.id)).one_or_none()
        conversation = session.scalars(
            select(Conversation).where(Conversation.contact_id == contact.id)
        ).one()
        message = session.scalars(
            select(Message).where(Message.conversation_id == conversation.id)
        ).one()
        return Lead(
            contact.name,
            {
                (i.kind, i.value)
                for i in session.scalars(
                    select(ContactIdentity).where(ContactIdentity.contact_id == contact.id)
                )
            },
            funnel.code,
            touch,
            task.kind if task is not None else None,
            task.due_at if task is not None else None,
            message.text,
            touch.channel_account,
        )

    return await db.read(work)


async def _snapshot(db: Database) -> list[int]:
    models = (Contact, Message, Deal, Task, OutboxMessage, AuditEntry, ChannelCheckpoint)

    def work(session: Session) -> list[int]:
        return [int(session.scalar(select(func.count()).select_from(m)) or 0) for m in models]

    return await db.read(work)


# -- landing-page forms ---------------------------------------------------------------------


async def test_a_json_form_with_a_token_becomes_an_attributed_lead(
    hub: TestClient[Any, Any], db: Database
) -> None:
    body = {
        "name": "Иван Петров",
        "phone": "8 (916) 123-45-67",
        "email": "Ivan@Example.com",
        "comment": "Нужен кластер",
        "city": "Москва",
        "page_url": "https://pg.example/?utm_source=yandex&utm_medium=cpc&utm_campaign=pg&yclid=42",
    }
    response = await hub.post(
        "/hooks/forms/landing-pg", json=body, headers={"X-Hook-Token": "form-token"}
    )
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["leads"][0]["duplicate"] is False
    lead = await _lead(db, "landing-pg")
    assert lead.name == "Иван Петров"
    assert lead.identities == {("phone", "+79161234567"), ("email", "ivan@example.com")}
    assert lead.funnel == "landing"
    assert (lead.touch.utm_source, lead.touch.utm_medium, lead.touch.utm_campaign) == (
        "yandex",
        "cpc",
        "pg",
    )
    assert lead.touch.yclid == "42"
    assert lead.touch.landing_page == body["page_url"]
    assert lead.task_kind == "call"
    assert lead.task_due == NOW + timedelta(minutes=15)
    assert "Нужен кластер" in lead.text
    assert "city: Москва" in lead.text


async def test_a_double_submit_without_a_key_is_one_lead(
    hub: TestClient[Any, Any], db: Database, clock: ManualClock
) -> None:
    body = urlencode({"name": "Anna", "phone": "+79161112233", "utm_source": "vk"})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Hook-Token": "form-token",
        "Referer": "https://pg.example/landing?gclid=g-1",
    }
    first = await hub.post("/hooks/forms/landing-pg", data=body, headers=headers)
    clock.advance(timedelta(seconds=30))
    second = await hub.post("/hooks/forms/landing-pg", data=body, headers=headers)
    assert first.status == second.status == 200
    leads = [(await r.json())["leads"][0] for r in (first, second)]
    assert [lead["duplicate"] for lead in leads] == [False, True]
    assert leads[0]["contact_id"] == leads[1]["contact_id"]
    lead = await _lead(db, "landing-pg")
    assert (lead.touch.utm_source, lead.touch.gclid) == ("vk", "g-1")
    assert lead.touch.referrer == "https://pg.example/landing?gclid=g-1"
    # Outside the window the same body is a new submission (a new message).
    clock.advance(timedelta(minutes=20))
    third = await hub.post("/hooks/forms/landing-pg", data=body, headers=headers)
    assert (await third.json())["leads"][0]["duplicate"] is False


async def test_an_idempotency_key_makes_repeats_one_lead(hub: TestClient[Any, Any]) -> None:
    headers = {"X-Hook-Token": "form-token", "Idempotency-Key": "submit-1"}
    answers = []
    for phone in ("+79160000001", "+79160000001"):
        response = await hub.post("/hooks/forms/landing-pg", json={"phone": phone}, headers=headers)
        answers.append((await response.json())["leads"][0]["duplicate"])
    assert answers == [False, True]


async def test_a_multipart_form_signed_with_hmac_and_mapped_fields(
    hub: TestClient[Any, Any], db: Database
) -> None:
    boundary = "----omnihub-test-boundary"
    parts = [
        ("your_name", None, b"Olga"),
        ("tel", None, b"+7 925 000-00-01"),
        ("budget", None, b"100k"),
        ("cv", "brief.pdf", b"%PDF-1.4"),
    ]
    chunks = []
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        kind = "application/pdf" if filename else "text/plain; charset=utf-8"
        chunks.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {kind}\r\n\r\n".encode()
            + data
            + b"\r\n"
        )
    raw = b"".join(chunks) + f"--{boundary}--\r\n".encode()
    stamp = str(int(NOW.timestamp()))
    digest = hmac.new(b"hmac-secret", f"{stamp}.".encode() + raw, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": f"multipart/form-data; boundary={boundary}",
        "X-Hook-Timestamp": stamp,
        "X-Hook-Signature": f"sha256={digest}",
    }
    response = await hub.post("/hooks/forms/landing-hmac", data=raw, headers=headers)
    assert response.status == 200, await response.text()
    lead = await _lead(db, "landing-hmac")
    assert lead.name == "Olga"
    assert lead.identities == {("phone", "+79250000001")}
    assert "budget: 100k" in lead.text
    # A stale timestamp is refused.
    old = str(int(NOW.timestamp()) - 3600)
    stale_sig = hmac.new(b"hmac-secret", f"{old}.".encode() + raw, hashlib.sha256).hexdigest()
    stale = await hub.post(
        "/hooks/forms/landing-hmac",
        data=raw,
        headers={**headers, "X-Hook-Timestamp": old, "X-Hook-Signature": f"sha256={stale_sig}"},
    )
    assert stale.status == 401


# -- errors write nothing -----------------------------------------------------------------


async def test_errors_answer_4xx_and_write_nothing(hub: TestClient[Any, Any], db: Database) -> None:
    before = await _snapshot(db)
    token = {"X-Hook-Token": "form-token"}
    cases = [
        (await hub.post("/hooks/forms/nope", json={"phone": "+79161234567"}, headers=token), 404),
        (await hub.post("/hooks/tilda/landing-pg", json={}, headers=token), 404),
        (await hub.post("/hooks/forms/landing-pg", json={"phone": "+79161234567"}), 401),
        (
            await hub.post(
                "/hooks/forms/landing-pg", json={"phone": "1"}, headers={"X-Hook-Token": "x"}
            ),
            401,
        ),
        (
            await hub.post(
                "/hooks/forms/landing-pg",
                data=b"{not json",
                headers={**token, "Content-Type": "application/json"},
            ),
            400,
        ),
        (
            await hub.post("/hooks/forms/landing-pg", json={"name": "no contact"}, headers=token),
            400,
        ),
        (await hub.post("/hooks/forms/landing-pg", json={"phone": "12"}, headers=token), 400),
        (
            await hub.post(
                "/hooks/forms/landing-pg",
                data=b"x" * (40 * 1024),
                headers={**token, "Content-Type": "application/json"},
            ),
            413,
        ),
        (await hub.post("/hooks/zadarma/zadarma", data={"event": "NOTIFY_END"}), 401),
        (await hub.post("/hooks/meta/meta", json={"entry": []}), 401),
    ]
    for response, status in cases:
        assert response.status == status, (response.url, await response.text())
        body = await response.json()
        assert body["error"]
        assert body["message"]
    assert await _snapshot(db) == before


# -- Tilda ----------------------------------------------------------------------------------


async def test_tilda_test_ping_and_a_lead(hub: TestClient[Any, Any], db: Database) -> None:
    before = await _snapshot(db)
    ping = await hub.post("/hooks/tilda/tilda-main", data={"test": "test"})
    assert (ping.status, await ping.text()) == (200, "ok")
    assert await _snapshot(db) == before
    tilda = {
        "Name": "Мария",
        "Phone": "+7 (903) 555-12-34",
        "Email": "maria@example.ru",
        "Textarea": "Хочу на вебинар",
        "tranid": "1234567:8901234",
        "formid": "form123456789",
        "utm_source": "telegram",
        "utm_campaign": "webinar-dec",
        "api_key": "tilda-key",
        "COOKIES": "_ym_uid=1; TILDAUTM=x",
    }
    bad = await hub.post("/hooks/tilda/tilda-main", data={**tilda, "api_key": "wrong"})
    assert bad.status == 401
    for _ in range(2):
        response = await hub.post("/hooks/tilda/tilda-main", data=tilda)
        assert (response.status, await response.text()) == (200, "ok")
    lead = await _lead(db, "tilda-main")
    assert lead.name == "Мария"
    assert lead.identities == {("phone", "+79035551234"), ("email", "maria@example.ru")}
    assert lead.funnel == "webinar"
    assert (lead.touch.utm_source, lead.touch.utm_campaign) == ("telegram", "webinar-dec")
    assert "tranid: 1234567:8901234" in lead.text
    assert "formid: form123456789" in lead.text
    assert "Textarea: Хочу на вебинар" in lead.text
    assert "tilda-key" not in lead.text
    assert "COOKIES" not in lead.text
    assert lead.task_kind == "call"


# -- Google Ads -----------------------------------------------------------------------------

GOOGLE_SAMPLE = {
    # The sample of Google's lead form webhook documentation.
    "lead_id": "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ-abcdefghijklmnopqrstuvwxyz-0123456789",
    "user_column_data": [
        {
            "column_name": "Full Name",
            "string_value": "FirstName LastName",
            "column_id": "FULL_NAME",
        },
        {"column_name": "User Phone", "string_value": "+16505550123", "column_id": "PHONE_NUMBER"},
        {"column_name": "User Email", "string_value": "test@example.com", "column_id": "EMAIL"},
        {"column_name": "Budget", "string_value": "10k", "column_id": "BUDGET"},
    ],
    "api_version": "1.0",
    "form_id": 40000000000,
    "campaign_id": 50000000000,
    "google_key": "theGoogleKey",
    "is_test": True,
    "gcl_id": "TeSter-123-gclid",
    "adgroup_id": 20000000000,
    "creative_id": 30000000000,
}


async def test_a_google_ads_test_lead_is_visible_as_a_test(
    hub: TestClient[Any, Any], db: Database
) -> None:
    wrong = await hub.post("/hooks/google-ads/google", json={**GOOGLE_SAMPLE, "google_key": "x"})
    assert wrong.status == 401
    response = await hub.post("/hooks/google-ads/google", json=GOOGLE_SAMPLE)
    assert response.status == 200, await response.text()
    lead = await _lead(db, "google")
    assert lead.name == "[TEST] FirstName LastName"
    # a test lead's contact details stay in its text: no real lead may join it by them
    assert lead.identities == set()
    assert "phone +16505550123, email test@example.com" in lead.text
    assert lead.text.startswith("[TEST]")
    assert "Budget: 10k" in lead.text
    assert (lead.touch.channel, lead.touch.utm_source, lead.touch.utm_campaign) == (
        "ad_lead",
        "google",
        "50000000000",
    )
    assert lead.touch.gclid == "TeSter-123-gclid"
    assert lead.task_kind is None  # routed to no one, nobody is to call it back
    contact = await db.read(lambda s: s.scalars(select(Contact)).one())
    assert (contact.is_test, contact.owner_id) == (True, None)


# -- VK -------------------------------------------------------------------------------------


async def test_vk_confirmation_secret_and_a_lead(hub: TestClient[Any, Any], db: Database) -> None:
    confirm = await hub.post("/hooks/vk/vk-group", json={"type": "confirmation", "group_id": 1})
    assert (confirm.status, await confirm.text()) == (200, "a1b2c3d4")
    event = {
        "type": "lead_forms_new",
        "object": {
            "lead_id": 4242,
            "group_id": 1,
            "user_id": 777,
            "form_id": 5,
            "form_name": "Заявка на консультацию",
            "ad_id": 9001,
            "answers": [
                {"key": "first_name", "question": "Имя", "answer": "Пётр"},
                {"key": "phone_number", "question": "Телефон", "answer": "+79991234567"},
                {"key": "custom_0", "question": "Удобное время", "answer": ["утро", "вечер"]},
            ],
        },
        "group_id": 1,
        "event_id": "abc",
        "v": "5.199",
        "secret": "vk-secret",
    }
    wrong = await hub.post("/hooks/vk/vk-group", json={**event, "secret": "nope"})
    assert wrong.status == 401
    response = await hub.post("/hooks/vk/vk-group", json=event)
    assert (response.status, await response.text()) == (200, "ok")
    other = await hub.post("/hooks/vk/vk-group", json={"type": "wall_post_new", **_vk(event)})
    assert (other.status, await other.text()) == (200, "ok")
    lead = await _lead(db, "vk-group")
    assert lead.name == "Пётр"
    assert lead.identities == {("phone", "+79991234567"), ("vk", "777")}
    assert (lead.touch.utm_source, lead.touch.utm_campaign) == ("vk", "9001")
    assert "Удобное время: утро, вечер" in lead.text


def _vk(event: dict[str, Any]) -> dict[str, Any]:
    return {"group_id": 1, "secret": event["secret"], "object": {}}


# -- Meta -----------------------------------------------------------------------------------


async def test_meta_challenge_signature_and_graph_fetch(
    hub: TestClient[Any, Any], db: Database, graph: Graph
) -> None:
    query = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": "meta-verify",
    }
    challenge = await hub.get("/hooks/meta/meta", params=query)
    assert (challenge.status, await challenge.text()) == (200, "1158201444")
    wrong = await hub.get("/hooks/meta/meta", params={**query, "hub.verify_token": "x"})
    assert wrong.status == 401
    body = json.dumps(
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "time": 1502473424,
                    "changes": [
                        {
                            "field": "leadgen",
                            "value": {
                                "ad_id": "555",
                                "form_id": "444444444444",
                                "leadgen_id": "444444444444",
                                "created_time": 1502473424,
                                "page_id": "1",
                                "adgroup_id": "4",
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": sig}
    bad = await hub.post(
        "/hooks/meta/meta", data=body, headers={**headers, "X-Hub-Signature-256": "sha256=00"}
    )
    assert bad.status == 401
    assert graph.requests == []
    response = await hub.post("/hooks/meta/meta", data=body, headers=headers)
    assert response.status == 200, await response.text()
    assert graph.requests[0][0] == "444444444444"
    assert "field_data" in graph.requests[0][1]["fields"]
    lead = await _lead(db, "meta")
    assert lead.name == "Joe Example"
    assert lead.identities == {("email", "joe@example.com")}
    assert (lead.touch.utm_source, lead.touch.utm_medium, lead.touch.utm_campaign) == (
        "fb",
        "lead_ads",
        "spring-sale",
    )
    assert "car_make: Honda" in lead.text
    assert lead.task_kind == "follow_up"


async def test_meta_lead_the_graph_api_refuses_is_parked_and_answered_200(
    hub: TestClient[Any, Any], db: Database
) -> None:
    """Meta resends what is not answered 2xx: a lead the Graph API refuses (404) is
    parked instead (see test_meta_batches.py), and no contact, deal or task is made."""
    before = await _snapshot(db)
    body = json.dumps(
        {"entry": [{"changes": [{"field": "leadgen", "value": {"leadgen_id": "999"}}]}]}
    ).encode()
    sig = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = await hub.post(
        "/hooks/meta/meta",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sig},
    )
    assert response.status == 200
    assert [p["leadgen_id"] for p in (await response.json())["parked"]] == ["999"]
    assert await _snapshot(db) == before


# -- Yandex Forms ---------------------------------------------------------------------------


async def test_yandex_forms_json_rpc(hub: TestClient[Any, Any], db: Database) -> None:
    rpc = {
        "jsonrpc": "2.0",
        "method": "lead",
        "id": "b6f7c3a0",
        "params": {
            "answer_id": "1234567890",
            "name": "Светлана",
            "email": "sveta@example.ru",
            "comment": "Интересует обучение",
            "utm_source": "yandex",
        },
    }
    anonymous = await hub.post("/hooks/yandex-forms/yaforms", json=rpc)
    assert anonymous.status == 401
    response = await hub.post(
        "/hooks/yandex-forms/yaforms", json=rpc, headers={"X-Hook-Token": "ya-token"}
    )
    assert response.status == 200
    assert await response.json() == {"jsonrpc": "2.0", "result": "ok", "id": "b6f7c3a0"}
    lead = await _lead(db, "yaforms")
    assert lead.name == "Светлана"
    assert lead.identities == {("email", "sveta@example.ru")}
    assert lead.touch.utm_source == "yandex"
    assert lead.text.startswith("Интересует обучение")


# -- Zadarma --------------------------------------------------------------------------------


def _zadarma(fields: dict[str, str]) -> dict[str, str]:
    data = fields["caller_id"] + fields["called_did"] + fields["call_start"]
    return {"Signature": zadarma_signature("zd-secret", data)}


async def test_zadarma_echo_start_and_a_missed_call_becomes_a_call_back(
    hub: TestClient[Any, Any], db: Database
) -> None:
    echo = await hub.get("/hooks/zadarma/zadarma", params={"zd_echo": "f8d3a1"})
    assert (echo.status, await echo.text()) == (200, "f8d3a1")
    start = {
        "event": "NOTIFY_START",
        "call_start": "2026-03-02 13:00:00",
        "pbx_call_id": "in_0123456789abcdef",
        "caller_id": "79161230001",
        "called_did": "74951234567",
    }
    before = await _snapshot(db)
    response = await hub.post("/hooks/zadarma/zadarma", data=start, headers=_zadarma(start))
    assert response.status == 200
    assert await _snapshot(db) == before
    end = {
        **start,
        "event": "NOTIFY_END",
        "internal": "",
        "duration": "0",
        "disposition": "no answer",
        "status_code": "19",
        "is_recorded": "0",
        "call_id_with_rec": "",
    }
    wrong = await hub.post("/hooks/zadarma/zadarma", data=end, headers={"Signature": "AAAA"})
    assert wrong.status == 401
    for _ in range(2):
        response = await hub.post("/hooks/zadarma/zadarma", data=end, headers=_zadarma(end))
        assert response.status == 200
    lead = await _lead(db, "zadarma")
    assert lead.identities == {("phone", "+79161230001")}
    assert lead.touch.channel == "phone"
    assert lead.task_kind == "call_back"  # crm_core.calls: the call record's call back
    assert lead.task_due == NOW + timedelta(minutes=15)
    assert lead.text.startswith("Missed call to 74951234567 (no answer)")
    calls = await db.read(
        lambda s: [(c.call_key, c.disposition, c.caller) for c in s.scalars(select(Call))]
    )
    # The PBX wrote 79161230001; the call keeps the number as the contact has it.
    assert calls == [("zadarma:in_0123456789abcdef", "missed", "+79161230001")]


async def test_zadarma_an_answered_call_is_recorded_on_the_contact(
    hub: TestClient[Any, Any], db: Database
) -> None:
    end = {
        "event": "NOTIFY_END",
        "call_start": "2026-03-02 13:05:00",
        "pbx_call_id": "in_answered",
        "caller_id": "79161230002",
        "called_did": "74951234567",
        "internal": "101",
        "duration": "125",
        "disposition": "answered",
        "status_code": "16",
        "is_recorded": "1",
        "call_id_with_rec": "1234567.890",
    }
    response = await hub.post("/hooks/zadarma/zadarma", data=end, headers=_zadarma(end))
    assert response.status == 200
    lead = await _lead(db, "zadarma")
    assert lead.text.startswith("Answered call to 74951234567, extension 101, 2:05 (answered)")
    assert "Recording: 1234567.890" in lead.text
    assert lead.task_kind is None  # answered: nobody has to call the client back
    call = await db.read(lambda s: s.scalars(select(Call)).one())
    assert (call.disposition, call.duration_seconds) == ("answered", 125)


# -- Standard Webhooks ----------------------------------------------------------------------


async def test_a_standard_webhooks_sender(hub: TestClient[Any, Any], db: Database) -> None:
    body = json.dumps(
        {
            "type": "lead.created",
            "timestamp": "2026-03-02T10:00:00Z",
            "data": {"name": "Partner Lead", "email": "lead@partner.test", "plan": "pro"},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        **standard_headers(
            STANDARD_SECRET, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", int(NOW.timestamp()), body
        ),
    }
    for _ in range(2):
        response = await hub.post("/hooks/standard/partner", data=body, headers=headers)
        assert response.status == 200, await response.text()
    lead = await _lead(db, "partner")
    assert lead.name == "Partner Lead"
    assert "plan: pro" in lead.text
    late = {**headers, "webhook-timestamp": str(int(time.time()) - 10**6)}
    assert (await hub.post("/hooks/standard/partner", data=body, headers=late)).status == 401


# -- hostile header bytes -------------------------------------------------------------------

FORM = ("Content-Type", b"application/x-www-form-urlencoded")
JSON = ("Content-Type", b"application/json")
STAMP = ("X-Hook-Timestamp", str(int(NOW.timestamp())).encode())
HOSTILE_HEADERS = {
    # source path -> the headers (one of them with bytes that are not UTF-8) and the body
    "form token": ("/hooks/forms/landing-pg", [JSON, ("X-Hook-Token", LATIN1_BYTES)], b"{}"),
    "form bearer": (
        "/hooks/forms/landing-pg",
        [JSON, ("Authorization", b"Bearer " + LATIN1_BYTES)],
        b"{}",
    ),
    "form hmac": (
        "/hooks/forms/landing-hmac",
        [JSON, STAMP, ("X-Hook-Signature", b"sha256=" + LATIN1_BYTES)],
        b"{}",
    ),
    "tilda key": ("/hooks/tilda/tilda-main", [FORM, ("api_key", LATIN1_BYTES)], b"Phone=1"),
    "meta signature": ("/hooks/meta/meta", [JSON, ("X-Hub-Signature-256", LATIN1_BYTES)], b"{}"),
    "zadarma signature": (
        "/hooks/zadarma/zadarma",
        [FORM, ("Signature", LATIN1_BYTES)],
        b"event=NOTIFY_START&caller_id=1&called_did=2&call_start=3",
    ),
    "standard signature": (
        "/hooks/standard/partner",
        [JSON, ("webhook-id", LATIN1_BYTES), STAMP, ("webhook-signature", LATIN1_BYTES)],
        b"{}",
    ),
    "standard timestamp": (
        "/hooks/standard/partner",
        [
            JSON,
            ("webhook-id", b"m"),
            ("webhook-timestamp", LATIN1_BYTES),
            ("webhook-signature", b"v"),
        ],
        b"{}",
    ),
    "yandex token": ("/hooks/yandex-forms/yaforms", [JSON, ("X-Hook-Token", LATIN1_BYTES)], b"{}"),
}


@pytest.mark.parametrize("case", HOSTILE_HEADERS)
async def test_secret_headers_with_bytes_that_are_not_utf8_are_a_401(
    hub: TestClient[Any, Any], db: Database, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    path, headers, body = HOSTILE_HEADERS[case]
    before = await _snapshot(db)
    answer = await raw_request(hub, "POST", path, headers, body)
    assert answer.status == 401, answer.body
    assert answer.json()["error"] == "bad_signature"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await _snapshot(db) == before


async def test_an_idempotency_key_that_is_not_utf8_is_a_400(
    hub: TestClient[Any, Any], db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    before = await _snapshot(db)
    headers = [JSON, ("X-Hook-Token", b"form-token"), ("Idempotency-Key", LATIN1_BYTES)]
    body = json.dumps({"phone": "+79161234567"}).encode()
    for path in ("/hooks/forms/landing-pg", "/hooks/yandex-forms/yaforms"):
        token = b"form-token" if "forms/" in path and "yandex" not in path else b"ya-token"
        sent = [JSON, ("X-Hook-Token", token), headers[2]]
        answer = await raw_request(hub, "POST", path, sent, body)
        assert answer.status == 400, answer.body
        assert "Idempotency-Key" in answer.json()["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert await _snapshot(db) == before


async def test_a_referer_that_is_not_utf8_is_kept_as_text(
    hub: TestClient[Any, Any], db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    headers = [
        JSON,
        ("X-Hook-Token", b"form-token"),
        ("Referer", b"https://x.test/" + LATIN1_BYTES),
    ]
    body = json.dumps({"phone": "+79161234567"}).encode()
    answer = await raw_request(hub, "POST", "/hooks/forms/landing-pg", headers, body)
    assert answer.status == 200, answer.body
    lead = await _lead(db, "landing-pg")
    assert (
        lead.touch.referrer
        == "https://x.test/caf\N{REPLACEMENT CHARACTER} \N{REPLACEMENT CHARACTER}"
    )
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


# -- media types ----------------------------------------------------------------------------

JSON_SOURCES = {
    # source path -> a body the source would take as JSON (its secret checks pass or come later)
    "google": ("/hooks/google-ads/google", GOOGLE_SAMPLE, {}),
    "vk": (
        "/hooks/vk/vk-group",
        {"type": "lead_forms_new", "group_id": 1, "secret": "vk-secret", "object": {}},
        {},
    ),
    "meta": ("/hooks/meta/meta", {"entry": []}, {}),
    "yandex": (
        "/hooks/yandex-forms/yaforms",
        {"name": "A", "email": "a@example.test"},
        {"X-Hook-Token": "ya-token"},
    ),
    "standard": ("/hooks/standard/partner", {"data": {"email": "a@example.test"}}, {}),
}


@pytest.mark.parametrize("case", JSON_SOURCES)
async def test_json_sources_refuse_other_media_types_with_a_415(
    hub: TestClient[Any, Any], db: Database, case: str
) -> None:
    path, doc, headers = JSON_SOURCES[case]
    body = json.dumps(doc).encode()
    before = await _snapshot(db)
    for media in ("text/plain", "application/x-www-form-urlencoded", None):
        sent = {**headers, **_signed(path, body), **({"Content-Type": media} if media else {})}
        answer = await hub.post(path, data=body, headers=sent, skip_auto_headers=["Content-Type"])
        assert answer.status == 415, (media, await answer.text())
        assert (await answer.json())["error"] == "unsupported_media_type"
    assert await _snapshot(db) == before


async def test_json_sources_take_json_with_a_charset_or_a_json_suffix(
    hub: TestClient[Any, Any],
) -> None:
    for case, media in [
        ("google", "application/json; charset=utf-8"),
        ("yandex", "Application/JSON"),
        ("standard", "application/cloudevents+json; charset=UTF-8"),
    ]:
        path, doc, headers = JSON_SOURCES[case]
        body = json.dumps(doc).encode()
        sent = {**headers, **_signed(path, body), "Content-Type": media}
        answer = await hub.post(path, data=body, headers=sent)
        assert answer.status == 200, (case, await answer.text())


def _signed(path: str, body: bytes) -> dict[str, str]:
    if path.startswith("/hooks/meta/"):
        digest = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Hub-Signature-256": f"sha256={digest}"}
    if path.startswith("/hooks/standard/"):
        return standard_headers(STANDARD_SECRET, "msg_media", int(NOW.timestamp()), body)
    return {}
