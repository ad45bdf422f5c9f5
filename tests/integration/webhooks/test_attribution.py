"""Attribution the sources report can trust, through the real endpoints: Tilda's UTM
cookie, calls to tracking numbers, and Google Ads test leads kept apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.journal import Journal
from crm_core.models import (
    Contact,
    ContactIdentity,
    Conversation,
    Deal,
    Message,
    OutboxMessage,
    Task,
    Timer,
    Touch,
)
from crm_core.people import create_api_token
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN, add_managers
from webhooks.zadarma import signature as zadarma_signature

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TRACKING = {
    "+74951234567": {"utm_source": "yandex", "utm_medium": "cpc", "utm_campaign": "pg-clusters"},
}


@dataclass
class Hub:
    client: TestClient[Any, Any]
    admin: dict[str, str]


@pytest.fixture
async def hub(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> Hub:
    clock.set(NOW)
    await add_managers(db, 2)

    def token(session: Session) -> str:
        journal = Journal("test", WHEN)
        secret = create_api_token(session, journal, "reports")[1]
        journal.flush(session)
        return secret

    secret = await db.write(token)
    sources: list[dict[str, Any]] = [
        {"key": "tilda-main", "kind": "tilda", "funnel": "webinar"},
        {"key": "google", "kind": "google_ads", "google_key": "theGoogleKey"},
        {"key": "zadarma", "kind": "zadarma", "api_secret": "zd-secret"},
    ]
    settings = Settings(
        database_url=database_url,
        tracking_numbers=TRACKING,
        channels={"webhooks": {"sources": sources}},
    )
    client = await aiohttp_client(create_app(settings, clock=clock))
    return Hub(client, {"Authorization": f"Bearer {secret}"})


@dataclass
class Stored:
    contact: Contact
    identities: set[tuple[str, str]]
    touches: list[Touch]
    deals: list[Deal]
    deal_touch: Touch | None
    tasks: list[Task]
    conversations: list[Conversation]
    timers: int
    text: str


async def _stored(db: Database, contact_id: int) -> Stored:
    def work(session: Session) -> Stored:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        deals = list(session.scalars(select(Deal).where(Deal.contact_id == contact_id)))
        conversations = list(
            session.scalars(select(Conversation).where(Conversation.contact_id == contact_id))
        )
        source = deals[0].source_touch_id if deals else None
        return Stored(
            contact,
            {
                (i.kind, i.value)
                for i in session.scalars(
                    select(ContactIdentity).where(ContactIdentity.contact_id == contact_id)
                )
            },
            list(session.scalars(select(Touch).where(Touch.contact_id == contact_id))),
            deals,
            session.get(Touch, source) if source is not None else None,
            list(session.scalars(select(Task).where(Task.contact_id == contact_id))),
            conversations,
            int(
                session.scalar(
                    select(func.count())
                    .select_from(Timer)
                    .where(Timer.conversation_id.in_([c.id for c in conversations]))
                )
                or 0
            ),
            "\n".join(
                m.text
                for m in session.scalars(
                    select(Message)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .where(Conversation.contact_id == contact_id)
                )
            ),
        )

    return await db.read(work)


# -- Tilda's UTM cookie --------------------------------------------------------------------


async def test_a_tilda_form_with_only_the_utm_cookie_is_attributed(hub: Hub, db: Database) -> None:
    tags = "utm_source=yandex|||utm_medium=cpc|||utm_campaign=pg-clusters|||"
    form = {
        "Name": "Мария",
        "Phone": "+7 (903) 555-12-34",
        "tranid": "1234567:1",
        "formid": "form1",
        "COOKIES": "_ym_uid=1681; TILDAUTM=" + quote(tags, safe="") + "; tildasid=1",
    }
    response = await hub.client.post("/hooks/tilda/tilda-main", data=form)
    assert (response.status, await response.text()) == (200, "ok")
    contact_id = await db.read(lambda s: s.scalars(select(Contact.id)).one())
    stored = await _stored(db, contact_id)
    assert [(t.utm_source, t.utm_medium, t.utm_campaign) for t in stored.touches] == [
        ("yandex", "cpc", "pg-clusters")
    ]
    assert stored.deal_touch is not None
    assert stored.deal_touch.utm_campaign == "pg-clusters"
    assert "TILDAUTM" not in stored.text


# -- tracking numbers ----------------------------------------------------------------------


def _zadarma_end(call_id: str, called: str) -> tuple[dict[str, str], dict[str, str]]:
    end = {
        "event": "NOTIFY_END",
        "call_start": "2026-03-02 13:00:00",
        "pbx_call_id": call_id,
        "caller_id": "79161230001",
        "called_did": called,
        "internal": "",
        "duration": "0",
        "disposition": "no answer",
        "status_code": "19",
        "is_recorded": "0",
        "call_id_with_rec": "",
    }
    data = end["caller_id"] + end["called_did"] + end["call_start"]
    return end, {"Signature": zadarma_signature("zd-secret", data)}


async def test_a_call_to_a_tracking_number_gets_its_campaign(hub: Hub, db: Database) -> None:
    end, headers = _zadarma_end("in_tracked", "74951234567")  # Zadarma writes no "+"
    response = await hub.client.post("/hooks/zadarma/zadarma", data=end, headers=headers)
    assert response.status == 200
    contact_id = await db.read(lambda s: s.scalars(select(Contact.id)).one())
    stored = await _stored(db, contact_id)
    assert [(t.channel, t.utm_source, t.utm_medium, t.utm_campaign) for t in stored.touches] == [
        ("phone", "yandex", "cpc", "pg-clusters")
    ]
    assert stored.deal_touch is not None
    assert stored.deal_touch.utm_campaign == "pg-clusters"
    # a call to another number of the PBX is a touch without tags, as before
    end, headers = _zadarma_end("in_other", "74950000000")
    end["caller_id"] = "79161230002"
    headers = {
        "Signature": zadarma_signature(
            "zd-secret", end["caller_id"] + end["called_did"] + end["call_start"]
        )
    }
    response = await hub.client.post("/hooks/zadarma/zadarma", data=end, headers=headers)
    assert response.status == 200
    other = await db.read(
        lambda s: s.scalars(select(Touch).where(Touch.contact_id != contact_id)).one()
    )
    assert (other.utm_source, other.utm_campaign) == (None, None)


# -- Google Ads test leads -----------------------------------------------------------------

GOOGLE_LEAD = {
    "lead_id": "TeSter-123-ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "user_column_data": [
        {"column_name": "Full Name", "string_value": "Anna Petrova", "column_id": "FULL_NAME"},
        {"column_name": "User Phone", "string_value": "+16505550123", "column_id": "PHONE_NUMBER"},
        {"column_name": "User Email", "string_value": "Anna@Example.com", "column_id": "EMAIL"},
    ],
    "api_version": "1.0",
    "form_id": 40000000000,
    "campaign_id": 50000000000,
    "google_key": "theGoogleKey",
    "is_test": True,
    "gcl_id": "TeSter-123-gclid",
}


async def test_a_google_ads_test_lead_stays_apart_from_the_real_one(hub: Hub, db: Database) -> None:
    test = await hub.client.post("/hooks/google-ads/google", json=GOOGLE_LEAD)
    assert test.status == 200, await test.text()
    (first,) = (await test.json())["leads"]
    assert first["task_id"] is None
    again = await hub.client.post("/hooks/google-ads/google", json=GOOGLE_LEAD)
    (repeat,) = (await again.json())["leads"]
    assert (repeat["duplicate"], repeat["contact_id"]) == (True, first["contact_id"])

    real = {**GOOGLE_LEAD, "lead_id": "real-lead-1", "is_test": False}
    response = await hub.client.post("/hooks/google-ads/google", json=real)
    assert response.status == 200, await response.text()
    (second,) = (await response.json())["leads"]
    assert second["contact_id"] != first["contact_id"]

    kept = await _stored(db, first["contact_id"])
    assert kept.contact.is_test is True
    assert kept.identities == set()
    assert kept.contact.owner_id is None
    assert [c.assignee_id for c in kept.conversations] == [None]
    assert kept.tasks == []
    assert kept.timers == 0
    assert [d.owner_id for d in kept.deals] == [None]
    assert kept.touches[0].utm_source == "google"
    # the contact details are kept in the message's text, never as identities
    assert "+16505550123" in kept.text
    assert "anna@example.com" in kept.text

    lead = await _stored(db, second["contact_id"])
    assert lead.contact.is_test is False
    assert lead.identities == {("phone", "+16505550123"), ("email", "anna@example.com")}
    assert lead.contact.owner_id is not None
    assert [c.assignee_id for c in lead.conversations] == [lead.contact.owner_id]
    assert [(t.kind, t.assignee_id) for t in lead.tasks] == [("call", lead.contact.owner_id)]

    events = await db.read(
        lambda s: [e for o in s.scalars(select(OutboxMessage)) for e in o.payload.get("events", [])]
    )
    marks = {
        e["payload"]["contact_id"]: e["payload"]["contact"]["is_test"]
        for e in events
        if e["payload"]["event"] == "contact.created"
    }
    assert marks == {first["contact_id"]: True, second["contact_id"]: False}

    shown = await hub.client.get(f"/api/v1/contacts/{first['contact_id']}", headers=hub.admin)
    assert shown.status == 200
    assert ((await shown.json())["is_test"], (await shown.json())["identities"]) == (True, [])
    shown = await hub.client.get(f"/api/v1/contacts/{second['contact_id']}", headers=hub.admin)
    assert (await shown.json())["is_test"] is False
