"""The reports over a seeded March 2026 whose every figure is worked out by hand below.

Sales works Mon-Fri 09:00-18:00 Moscow time; the company's time zone is Moscow.

Ann's conversations (opened -> first reply, Moscow time):
  c1 Mon 02.03 10:00 -> 10:30            clock 30 min      working 30 min
  c2 Fri 06.03 17:30 -> Mon 09.03 09:30  clock 64 h = 3840  working 30 + 30 = 60 min
  c3 Tue 03.03 12:00 -> 13:30            clock 90 min      working 90 min
  c4 Wed 04.03 20:00, never answered     (received, not answered)
  c0 Fri 27.02 10:00 -> 10:05            out of the period
  working [30, 60, 90]: median 60; p90 (linear): h = 2 x 0.9 = 1.8 -> 60 + 0.8 x 30 = 84
  clock [30, 90, 3840]: median 90; p90: 90 + 0.8 x (3840 - 90) = 3090
Bob's: c5 Tue 10.03 11:00 -> 11:06: 6 min both ways.

Deals in the consultation funnel, all created in March (the cohort of 4), each entering
"new" at creation:
  d1 (Ann, the client Ivan, first touch a Google form): new -2 h-> won, 1000.00
  d2 (Ann): new -4 h-> lost, reason "price"
  d3 (Bob): new -6 h-> contact_made
  d4 (Bob): stays new
  reached: new 4; contact_made 2 (d3, and d1 passing through on its way to won);
  conversion new -> contact_made = 2 / 4 = 0.5; won 1, lost 1: win rate 0.5;
  median time in "new": [2, 4, 6] h -> 4 h.
A test lead's won deal (500.00) is in no report.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import (
    ChannelAccount,
    Contact,
    Conversation,
    Deal,
    DealStageChange,
    Funnel,
    Stage,
    Team,
    Touch,
)
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
MSK = ZoneInfo("Europe/Moscow")
ROUTING = """
teams:
  Sales:
    mode: evenly
    hours:
      timezone: Europe/Moscow
      weekly: {mon: ['09:00-18:00'], tue: ['09:00-18:00'], wed: ['09:00-18:00'],
               thu: ['09:00-18:00'], fri: ['09:00-18:00']}
rules:
  - name: everything
    team: Sales
"""


def msk(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


def _seed(session: Session) -> dict[str, Any]:
    journal = Journal("test", msk(1, 9))
    people = {}
    for name, role in (("ann", Role.MANAGER), ("bob", Role.MANAGER), ("head", Role.HEAD)):
        manager = create_manager(
            session,
            journal,
            email=f"{name}@example.test",
            name=name.title(),
            role=role,
            team="Sales" if role is Role.MANAGER else None,
            password=f"{name}-password",
        )
        people[name] = manager.id
    tokens = {n: create_api_token(session, journal, n, i)[1] for n, i in people.items()}
    journal.flush(session)
    team = session.scalar(select(Team.id).where(Team.name == "Sales"))
    account = ChannelAccount(channel="form", key="google-form", title="form", created_at=msk(1, 9))
    chat = ChannelAccount(channel="telegram", key="bot", title="bot", created_at=msk(1, 9))
    session.add_all([account, chat])
    session.flush()

    def contact(name: str, test: bool = False) -> Contact:
        row = Contact(name=name, is_test=test, created_at=msk(1, 9), updated_at=msk(1, 9))
        session.add(row)
        session.flush()
        return row

    clients = [contact(f"Client {n}") for n in range(6)]
    conversations = [
        ("ann", msk(2, 10), msk(2, 10, 30)),
        ("ann", msk(6, 17, 30), msk(9, 9, 30)),
        ("ann", msk(3, 12), msk(3, 13, 30)),
        ("ann", msk(4, 20), None),
        ("ann", msk(27, 10, month=2), msk(27, 10, 5, month=2)),
        ("bob", msk(10, 11), msk(10, 11, 6)),
    ]
    for n, (who, opened, answered) in enumerate(conversations):
        session.add(
            Conversation(
                contact_id=clients[n].id,
                channel_account_id=chat.id,
                status="open",
                assignee_id=people[who],
                team_id=team,
                tags=[],
                opened_at=opened,
                first_response_at=answered,
                last_message_at=answered or opened,
            )
        )
    funnel = session.scalars(select(Funnel).where(Funnel.code == "consultation")).one()
    stages = {s.code: s for s in session.scalars(select(Stage).where(Stage.funnel_id == funnel.id))}
    ivan = contact("Ivan")
    google = Touch(
        contact_id=ivan.id,
        channel="form",
        channel_account="google-form",
        utm_source="google",
        utm_campaign="pg-trial",
        occurred_at=msk(11, 9),
    )
    session.add(google)
    session.flush()
    deals = [
        ("ann", ivan, msk(11, 10), [("won", 2)], Decimal("1000.00"), None, google.id),
        ("ann", clients[1], msk(12, 10), [("lost", 4)], None, "price", None),
        ("bob", clients[2], msk(13, 10), [("contact_made", 6)], None, None, None),
        ("bob", clients[3], msk(14, 10), [], None, None, None),
        (
            "ann",
            contact("Test lead", test=True),
            msk(15, 10),
            [("won", 1)],
            Decimal(500),
            None,
            None,
        ),
    ]
    for who, client, created, moves, amount, reason, touch in deals:
        final = stages[moves[-1][0]] if moves else stages["new"]
        at = created + timedelta(hours=moves[-1][1]) if moves else None
        deal = Deal(
            contact_id=client.id,
            funnel_id=funnel.id,
            stage_id=final.id,
            is_open=final.kind == "open",
            title="deal",
            amount=amount,
            currency="RUB",
            owner_id=people[who],
            lost_reason=reason,
            source_touch_id=touch,
            tags=[],
            created_at=created,
            updated_at=created,
            closed_at=at if final.kind != "open" else None,
        )
        session.add(deal)
        session.flush()
        session.add(
            DealStageChange(
                deal_id=deal.id,
                from_stage_id=None,
                to_stage_id=stages["new"].id,
                actor="test",
                changed_at=created,
            )
        )
        for code, hours in moves:
            session.add(
                DealStageChange(
                    deal_id=deal.id,
                    from_stage_id=stages["new"].id,
                    to_stage_id=stages[code].id,
                    actor="test",
                    changed_at=created + timedelta(hours=hours),
                )
            )
    return {"ids": people, "tokens": tokens, "ivan": ivan.id}


@pytest.fixture
async def seeded(
    database_url: str,
    db: Database,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> tuple[TestClient[Any, Any], dict[str, Any]]:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING)
    data = await db.write(_seed)
    settings = Settings(
        database_url=database_url,
        media_dir=str(tmp_path / "media"),
        routing_file=str(routing),
        timezone="Europe/Moscow",
    )
    clock = ManualClock(msk(31, 20))
    client = await aiohttp_client(create_app(settings, clock=clock))
    return client, data


def _auth(data: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {data['tokens'][who]}"}


MARCH = "from=2026-03-01&to=2026-03-31"


async def test_manager_activity_counts_working_and_clock_time(
    seeded: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, data = seeded
    response = await client.get(f"/api/v1/reports/activity?{MARCH}", headers=_auth(data, "head"))
    assert response.status == 200, await response.text()
    rows = {r["manager"]: r for r in (await response.json())["managers"]}
    ann, bob = rows["Ann"], rows["Bob"]
    assert ann["conversations_received"] == 4
    assert ann["conversations_answered"] == 3
    assert ann["first_response_work_minutes"] == {"median": 60.0, "p90": 84.0}
    assert ann["first_response_clock_minutes"] == {"median": 90.0, "p90": 3090.0}
    assert bob["first_response_work_minutes"] == {"median": 6.0, "p90": 6.0}
    assert ann["deals_won"] == 1
    assert ann["won_amount"] == "1000.00"  # the test lead's 500 is not counted
    assert ann["deals_lost"] == 1


async def test_a_manager_sees_only_their_own_numbers(
    seeded: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, data = seeded
    own = await client.get(f"/api/v1/reports/activity?{MARCH}", headers=_auth(data, "ann"))
    assert [r["manager"] for r in (await own.json())["managers"]] == ["Ann"]
    bob = data["ids"]["bob"]
    theirs = await client.get(
        f"/api/v1/reports/activity?{MARCH}&manager_id={bob}", headers=_auth(data, "ann")
    )
    assert (await theirs.json())["managers"] == []
    funnel = await client.get(f"/api/v1/reports/funnel?{MARCH}", headers=_auth(data, "ann"))
    consultation = next(f for f in (await funnel.json())["funnels"] if f["code"] == "consultation")
    assert consultation["cohort"] == 2  # Ann's two deals only


async def test_the_funnel_of_the_march_cohort(
    seeded: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, data = seeded
    response = await client.get(
        f"/api/v1/reports/funnel?{MARCH}&funnel=consultation", headers=_auth(data, "head")
    )
    assert response.status == 200, await response.text()
    (funnel,) = (await response.json())["funnels"]
    stages = {s["code"]: s for s in funnel["stages"]}
    assert funnel["cohort"] == 4
    assert stages["new"]["reached"] == 4
    assert stages["contact_made"]["reached"] == 2
    assert stages["new"]["conversion_to_next"] == 0.5
    assert stages["new"]["median_hours_in_stage"] == 4.0
    assert stages["won"]["reached"] == 1
    assert (funnel["won"], funnel["lost"], funnel["win_rate"]) == (1, 1, 0.5)
    assert funnel["lost_reasons"] == [{"reason": "price", "count": 1}]


async def test_sources_and_abc_and_their_exports(
    seeded: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, data = seeded
    head = _auth(data, "head")
    response = await client.get(f"/api/v1/reports/sources?{MARCH}", headers=head)
    report = await response.json()
    google = next(r for r in report["first"]["utm_source"] if r["value"] == "google")
    assert (google["leads"], google["deals"], google["won"], google["revenue"]) == (
        1,
        1,
        1,
        "1000.00",
    )
    abc = await (await client.get(f"/api/v1/reports/abc-xyz?{MARCH}", headers=head)).json()
    assert [(i["key"], i["abc"], i["revenue"]) for i in abc["items"]] == [
        (data["ivan"], "A", "1000.00")
    ]
    assert abc["items"][0]["xyz_note"] == "too few months"  # a client since March only
    assert abc["matrix"]["A"]["-"]["count"] == 1

    exported = await client.get(f"/api/v1/reports/sources?{MARCH}&format=csv", headers=head)
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await exported.read()).decode("utf-8-sig"))))
    assert rows[0][:3] == ["model", "dimension", "value"]
    assert ["first", "utm_source", "google", "1", "1", "1", "1000.0"] in rows
    book = await client.get(f"/api/v1/reports/activity?{MARCH}&format=xlsx", headers=head)
    assert book.status == 200
    sheet = load_workbook(io.BytesIO(await book.read()))["activity"]
    header = [c.value for c in sheet[1]]
    ann = next(r for r in sheet.iter_rows(min_row=2, values_only=True) if r[1] == "Ann")
    assert ann[header.index("first_response_work_median_min")] == 60.0


async def test_bad_parameters_get_a_clear_400(
    seeded: tuple[TestClient[Any, Any], dict[str, Any]],
) -> None:
    client, data = seeded
    head = _auth(data, "head")
    for query in (
        "from=2026-03-31&to=2026-03-01",
        "from=march",
        "format=pdf",
        "team=Nobody",
        "funnel=nope",
    ):
        response = await client.get(f"/api/v1/reports/funnel?{query}", headers=head)
        assert response.status == 400, (query, await response.text())
        assert "error" in await response.json()
