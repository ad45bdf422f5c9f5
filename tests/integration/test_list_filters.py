"""The filters of the contacts and deals lists (``GET /api/v1/contacts``, ``/deals``) over
seeded rows, on SQLite and PostgreSQL. The company's time zone is Moscow (UTC+3).

Contacts (created, Moscow time; owner; identities; conversations by channel):

  ivan   01.03 00:30  Ann     telegram id      telegram (Ann's)
  olga   15.03 12:00  Bob     email            email (Bob's)
  pyotr  31.03 23:30  nobody  phone            form landing-pg (unassigned)
  anna   01.04 00:10  Ann     -                ad_lead (Ann's)
  site   10.02 12:00  nobody  site visitor id  -

Deals (created; owner; amount; the touch that opened it: channel, account, utm_source):

  d1  ivan   01.03 00:30  Ann     1000.00    telegram bot google
  d2  olga   15.03 12:00  Bob     5000.50    form landing-pg yandex
  d3  pyotr  31.03 23:30  nobody  -          form landing-kafka -
  d4  anna   01.04 00:10  Ann     250000.00  no touch (webinar funnel, won)
  d5  ivan   20.03 10:00  Bob     1000.00    ad_lead yandex -

Ann (a manager; Sales does not share work) sees the contacts ivan, pyotr, anna and the
deals d1, d3, d4; Bob sees olga, pyotr, ivan (his deal d5 is ivan's) and d2, d3, d5.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import (
    ChannelAccount,
    Contact,
    ContactIdentity,
    Conversation,
    Deal,
    Funnel,
    Stage,
    Team,
    Touch,
)
from crm_core.people import create_api_token, create_manager
from hub.api.openapi import document
from hub.app import create_app
from hub.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
MSK = ZoneInfo("Europe/Moscow")


def msk(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


CONTACTS = {  # name: (created, owner, identity kind, conversation's door or None)
    "ivan": (msk(3, 1, 0, 30), "ann", "telegram", ("telegram", "bot")),
    "olga": (msk(3, 15, 12), "bob", "email", ("email", "sales")),
    "pyotr": (msk(3, 31, 23, 30), None, "phone", ("form", "landing-pg")),
    "anna": (msk(4, 1, 0, 10), "ann", None, ("ad_lead", "yandex")),
    "site": (msk(2, 10, 12), None, "site_visitor", None),
}
DEALS = {  # name: (contact, created, owner, amount, touch: channel, account, utm_source)
    "d1": ("ivan", msk(3, 1, 0, 30), "ann", "1000.00", ("telegram", "bot", "google")),
    "d2": ("olga", msk(3, 15, 12), "bob", "5000.50", ("form", "landing-pg", "yandex")),
    "d3": ("pyotr", msk(3, 31, 23, 30), None, None, ("form", "landing-kafka", None)),
    "d4": ("anna", msk(4, 1, 0, 10), "ann", "250000.00", None),
    "d5": ("ivan", msk(3, 20, 10), "bob", "1000.00", ("ad_lead", "yandex", None)),
}


def _seed(session: Session) -> dict[str, Any]:
    journal = Journal("test", msk(2, 1, 9))
    people = {
        name: create_manager(
            session,
            journal,
            email=f"{name}@example.test",
            name=name.title(),
            role=role,
            team="Sales" if role is Role.MANAGER else None,
        ).id
        for name, role in (("ann", Role.MANAGER), ("bob", Role.MANAGER), ("head", Role.HEAD))
    }
    tokens = {n: create_api_token(session, journal, n, i)[1] for n, i in people.items()}
    journal.flush(session)
    doors: dict[tuple[str, str], int] = {}
    for channel, key in sorted({c[3] for c in CONTACTS.values() if c[3]}):
        account = ChannelAccount(channel=channel, key=key, title=key, created_at=msk(2, 1, 9))
        session.add(account)
        session.flush()
        doors[(channel, key)] = account.id
    contacts: dict[str, int] = {}
    for name, (created, owner, kind, door) in CONTACTS.items():
        contact = Contact(
            name=name.title(),
            owner_id=people.get(owner or ""),
            created_at=created,
            updated_at=created,
        )
        session.add(contact)
        session.flush()
        contacts[name] = contact.id
        if kind is not None:
            session.add(
                ContactIdentity(
                    contact_id=contact.id, kind=kind, value=f"{name}-{kind}", created_at=created
                )
            )
        if door is not None:
            session.add(
                Conversation(
                    contact_id=contact.id,
                    channel_account_id=doors[door],
                    status="open",
                    assignee_id=contact.owner_id,
                    tags=[],
                    opened_at=created,
                    last_message_at=created,
                )
            )
    stages = {
        (funnel, stage): (funnel_id, stage_id)
        for funnel, stage, funnel_id, stage_id in session.execute(
            select(Funnel.code, Stage.code, Funnel.id, Stage.id).join(
                Stage, Stage.funnel_id == Funnel.id
            )
        )
    }
    deals: dict[str, int] = {}
    for name, (whose, created, owner, amount, touch) in DEALS.items():
        touch_id = None
        if touch is not None:
            row = Touch(
                contact_id=contacts[whose],
                channel=touch[0],
                channel_account=touch[1],
                utm_source=touch[2],
                occurred_at=created,
            )
            session.add(row)
            session.flush()
            touch_id = row.id
        funnel_id, stage_id = stages[
            ("webinar", "won") if name == "d4" else ("consultation", "new")
        ]
        deal = Deal(
            contact_id=contacts[whose],
            funnel_id=funnel_id,
            stage_id=stage_id,
            is_open=name != "d4",
            title=f"Deal {name}",
            amount=None if amount is None else Decimal(amount),
            currency="RUB",
            owner_id=people.get(owner or ""),
            source_touch_id=touch_id,
            tags=[],
            created_at=created,
            updated_at=created,
        )
        session.add(deal)
        session.flush()
        deals[name] = deal.id
    return {"people": people, "tokens": tokens, "contacts": contacts, "deals": deals}


@pytest.fixture
async def seeded(
    database_url: str, db: Database, aiohttp_client: ClientFactory, tmp_path: Path
) -> tuple[Client, dict[str, Any]]:
    data = await db.write(_seed)
    settings = Settings(
        database_url=database_url, media_dir=str(tmp_path / "media"), timezone="Europe/Moscow"
    )
    client = await aiohttp_client(create_app(settings, clock=ManualClock(msk(4, 20, 12))))
    return client, data


async def _names(
    seeded: tuple[Client, dict[str, Any]], what: str, query: str, who: str = "head"
) -> list[str]:
    """The names (ivan, d2...) of every item of the list, page after page."""
    client, data = seeded
    by_id = {v: k for k, v in data[what].items()}
    names: list[str] = []
    after = 0
    while True:
        response = await client.get(
            f"/api/v1/{what}?{query}&after={after}&limit=2",
            headers={"Authorization": f"Bearer {data['tokens'][who]}"},
        )
        assert response.status == 200, await response.text()
        page = await response.json()
        names += [by_id[item["id"]] for item in page["items"]]
        if page["next_after"] is None:
            return names
        after = page["next_after"]


CONTACT_CASES = [
    ("", ["ivan", "olga", "pyotr", "anna", "site"]),
    ("owner_id={ann}", ["ivan", "anna"]),
    ("owner_id={bob}", ["olga"]),
    ("owner_id=none", ["pyotr", "site"]),
    # whole days in Moscow: 01.03 00:30 is March, 01.04 00:10 is April
    ("created_from=2026-03-01&created_to=2026-03-31", ["ivan", "olga", "pyotr"]),
    ("created_from=2026-04-01", ["anna"]),
    ("created_to=2026-02-28", ["site"]),
    ("created_from=2026-03-31&created_to=2026-03-31", ["pyotr"]),
    # a moment: ivan's 01.03 00:30 Moscow is 28.02 21:30 UTC
    ("created_from=2026-03-01T00:00:00Z", ["olga", "pyotr", "anna"]),
    # both ends include the moment itself (olga: 15.03 12:00 Moscow, 09:00 UTC)
    ("created_to=2026-03-15T09:00:00Z", ["ivan", "olga", "site"]),
    ("created_from=2026-03-15T12:00:00%2B03:00", ["olga", "pyotr", "anna"]),
    ("created_to=2026-03-15T08:59:59.999999Z", ["ivan", "site"]),
    ("channel=telegram", ["ivan"]),  # an identity and a conversation
    ("channel=email", ["olga"]),
    ("channel=phone", ["pyotr"]),  # a phone number, though the form brought him
    ("channel=form", ["pyotr"]),
    ("channel=ad_lead", ["anna"]),  # a conversation, no identity
    ("channel=site_chat", ["site"]),  # a site visitor id
    ("channel=api", []),
    ("owner_id={ann}&channel=telegram&created_to=2026-03-31", ["ivan"]),
]


async def test_contacts_filters(seeded: tuple[Client, dict[str, Any]]) -> None:
    for query, expected in CONTACT_CASES:
        found = await _names(seeded, "contacts", query.format(**seeded[1]["people"]))
        assert found == expected, query


DEAL_CASES = [
    ("", ["d1", "d2", "d3", "d4", "d5"]),
    ("owner_id={ann}", ["d1", "d4"]),
    ("owner_id={bob}", ["d2", "d5"]),
    ("owner_id=none", ["d3"]),
    ("created_from=2026-03-01&created_to=2026-03-31", ["d1", "d2", "d3", "d5"]),
    ("created_from=2026-03-20T07:00:00Z&created_to=2026-03-20T07:00:00Z", ["d5"]),
    ("created_to=2026-03-01", ["d1"]),
    # both bounds inclusive; a deal without an amount matches none
    ("amount_min=1000", ["d1", "d2", "d4", "d5"]),
    ("amount_max=1000", ["d1", "d5"]),
    ("amount_min=1000.01&amount_max=5000.50", ["d2"]),
    ("amount_min=0", ["d1", "d2", "d4", "d5"]),
    ("amount_min=999999999999.99", []),
    # the touch that opened the deal: its channel, or channel and account
    ("source=form", ["d2", "d3"]),
    ("source=form:landing-pg", ["d2"]),
    ("source=form:landing", []),
    ("source=telegram:bot", ["d1"]),
    ("source=ad_lead", ["d5"]),
    ("source=email", []),
    ("utm_source=yandex", ["d2"]),
    ("utm_source=google&source=telegram", ["d1"]),
    ("funnel=webinar", ["d4"]),
    ("stage=new", ["d1", "d2", "d3", "d5"]),
    ("contact_id={ivan}", ["d1", "d5"]),
    ("owner_id={bob}&amount_max=1000&created_from=2026-03-02", ["d5"]),
]


async def test_deals_filters(seeded: tuple[Client, dict[str, Any]]) -> None:
    names = {**seeded[1]["people"], **seeded[1]["contacts"]}
    for query, expected in DEAL_CASES:
        assert await _names(seeded, "deals", query.format(**names)) == expected, query


async def test_filters_page_through_the_matches(seeded: tuple[Client, dict[str, Any]]) -> None:
    client, data = seeded
    head = {"Authorization": f"Bearer {data['tokens']['head']}"}
    deals = data["deals"]
    first = await (await client.get("/api/v1/deals?amount_min=1000&limit=2", headers=head)).json()
    assert [d["id"] for d in first["items"]] == [deals["d1"], deals["d2"]]
    assert first["next_after"] == deals["d2"]
    url = f"/api/v1/deals?amount_min=1000&limit=2&after={first['next_after']}"
    second = await (await client.get(url, headers=head)).json()
    assert [d["id"] for d in second["items"]] == [deals["d4"], deals["d5"]]
    assert second["next_after"] is None
    contacts = data["contacts"]
    url = "/api/v1/contacts?owner_id=none&limit=1"
    first = await (await client.get(url, headers=head)).json()
    assert [c["id"] for c in first["items"]] == [contacts["pyotr"]]
    url += f"&after={first['next_after']}"
    second = await (await client.get(url, headers=head)).json()
    assert [c["id"] for c in second["items"]] == [contacts["site"]]
    assert second["next_after"] is None


SCOPE_CASES = [
    # a manager filtering by a colleague gets nothing their role does not show them
    ("ann", "contacts", "", ["ivan", "pyotr", "anna"]),
    ("ann", "contacts", "owner_id={bob}", []),
    ("ann", "contacts", "owner_id=none", ["pyotr"]),  # not the site visitor nobody sees
    ("ann", "contacts", "channel=email", []),
    ("ann", "deals", "", ["d1", "d3", "d4"]),
    ("ann", "deals", "owner_id={bob}", []),
    ("ann", "deals", "source=form", ["d3"]),
    ("ann", "deals", "amount_min=1000", ["d1", "d4"]),
    ("bob", "deals", "owner_id={ann}", []),
    # ivan is Ann's, and Bob sees him only through his own deal d5: no more than that
    ("bob", "contacts", "", ["ivan", "olga", "pyotr"]),
    ("bob", "contacts", "owner_id={ann}", ["ivan"]),
    ("bob", "contacts", "owner_id={ann}&channel=ad_lead", []),
    # the head sees everyone's
    ("head", "deals", "owner_id={bob}", ["d2", "d5"]),
]


async def test_filters_stay_within_the_scope(seeded: tuple[Client, dict[str, Any]]) -> None:
    for who, what, query, expected in SCOPE_CASES:
        found = await _names(seeded, what, query.format(**seeded[1]["people"]), who)
        assert found == expected, (who, what, query)


async def test_a_team_that_shares_work_sees_a_teammate_s(
    seeded: tuple[Client, dict[str, Any]], db: Database
) -> None:
    def share(session: Session) -> None:
        session.execute(update(Team).where(Team.name == "Sales").values(shared_work=True))

    await db.write(share)
    bob = seeded[1]["people"]["bob"]
    assert await _names(seeded, "deals", f"owner_id={bob}", "ann") == ["d2", "d5"]
    assert await _names(seeded, "contacts", f"owner_id={bob}", "ann") == ["olga"]


BAD_CONTACTS = [
    ("owner_id=", "owner_id"),
    ("owner_id=ann", "owner_id"),
    ("owner_id=0", "owner_id"),
    ("owner_id=None", "owner_id"),
    ("owner_id=1.5", "owner_id"),
    ("created_from=", "created_from"),
    ("created_from=2026-13-01", "created_from"),
    ("created_from=2026-02-30", "created_from"),
    ("created_from=yesterday", "created_from"),
    ("created_from=1700000000", "created_from"),
    ("created_from=1969-12-31", "created_from"),
    ("created_from=2026-03-01T09:00:00", "created_from"),  # no offset
    ("created_from=2026-03-01T09:00:00+03:00", "created_from"),  # + unescaped: a space
    ("created_to=2026-03-01T25:00:00Z", "created_to"),
    ("created_to=0001-01-01T00:00:00%2B14:00", "created_to"),
    ("created_to=9999-12-31T23:59:59Z", "created_to"),
    ("created_from=2026-03-02&created_to=2026-03-01", "created_to"),
    ("created_from=2026-03-01T10:00:00Z&created_to=2026-03-01T09:59:59Z", "created_to"),
    ("channel=", "channel"),
    ("channel=fax", "channel"),
    ("channel=TELEGRAM", "channel"),
]
BAD_DEALS = [
    *BAD_CONTACTS[:-3],
    ("amount_min=", "amount_min"),
    ("amount_min=-1", "amount_min"),
    ("amount_min=1e3", "amount_min"),
    ("amount_min=NaN", "amount_min"),
    ("amount_min=Infinity", "amount_min"),
    ("amount_min=1_000", "amount_min"),
    ("amount_min=%201000", "amount_min"),
    ("amount_min=1,5", "amount_min"),
    ("amount_max=1.234", "amount_max"),
    ("amount_max=1000000000000", "amount_max"),
    ("amount_min=10&amount_max=9.99", "amount_max"),
    ("source=", "source"),
    ("source=fax", "source"),
    ("source=form:", "source"),
    ("source=:landing-pg", "source"),
    (f"source=form:{'x' * 121}", "source"),
    ("utm_source=", "utm_source"),
    (f"utm_source={'x' * 201}", "utm_source"),
    ("funnel=", "funnel"),
    ("stage=", "stage"),
    ("contact_id=", "contact_id"),
]


async def test_a_bad_filter_is_a_400_that_names_it(seeded: tuple[Client, dict[str, Any]]) -> None:
    client, data = seeded
    ann = {"Authorization": f"Bearer {data['tokens']['ann']}"}
    cases = [("contacts", q, f) for q, f in BAD_CONTACTS] + [("deals", q, f) for q, f in BAD_DEALS]
    for what, query, field in cases:
        response = await client.get(f"/api/v1/{what}?{query}", headers=ann)
        assert response.status == 400, (what, query, await response.text())
        body = await response.json()
        assert body["error"] == "invalid_query", (what, query)
        assert body["errors"] == [{"field": field, "message": body["message"][len(field) + 2 :]}]
        assert body["message"].startswith(f"{field}: "), (what, query)


def test_every_filter_is_documented() -> None:
    paths = document()["paths"]
    contacts = {p["name"] for p in paths["/api/v1/contacts"]["get"]["parameters"]}
    deals = {p["name"] for p in paths["/api/v1/deals"]["get"]["parameters"]}
    common = {"after", "limit", "owner_id", "created_from", "created_to"}
    assert contacts == common | {"channel"}
    assert deals == common | {
        "funnel",
        "stage",
        "contact_id",
        "amount_min",
        "amount_max",
        "source",
        "utm_source",
    }
    for path in ("/api/v1/contacts", "/api/v1/deals"):
        for parameter in paths[path]["get"]["parameters"]:
            if parameter["name"] not in {"after", "limit"}:
                assert parameter["description"], parameter["name"]
