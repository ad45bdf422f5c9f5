"""The calls list (``GET /api/v1/calls``) and the calls per manager report
(``GET /api/v1/reports/calls``) over seeded calls whose every figure is worked out by
hand below. The company's time zone is Moscow (UTC+3).

Conversations (all on the phone channel): Ivan's is Ann's, Olga's is Bob's, Pyotr's is
nobody's, and a test lead's is Ann's. Calls, in the order they are stored (Moscow time;
ring = answered_at - started_at; talk = duration_seconds):

  key  when          line    dir  disposition  took  conversation  ring  talk  belongs to
  k0   28.02 23:30   office  in   answered     Ann   Ivan's         5    10    Ann (Feb)
  k1   02.03 10:00   office  in   answered     Ann   Ivan's        10   120    Ann
  k2   03.03 11:00   office  in   answered     Ann   Ivan's        30    60    Ann
  k3   04.03 12:00   office  in   missed       -     Ivan's         -     0    Ann
  k4   05.03 13:00   office  out  answered     Ann   Ivan's         5   300    Ann
  k5   06.03 14:00   office  in   voicemail    -     Olga's         -     0    Bob
  k6   10.03 09:00   office  in   answered     Bob   Olga's        20    90    Bob
  k7   11.03 10:00   shop    out  busy         Bob   Olga's         -     0    Bob
  k8   12.03 10:00   shop    in   busy         -     Pyotr's        -     0    nobody
  k9   13.03 10:00   office  in   answered     Bob   Ivan's         3    30    Bob
  k10  15.03 10:00   office  in   answered     Ann   test lead's    2   100    Ann (test)
  k11  31.03 23:30   office  in   answered     Ann   Ivan's         4    40    Ann
  k12  01.04 00:30   office  out  answered     Ann   Ivan's         6    50    Ann (April)

March (01.03 00:00 to 01.04 00:00 Moscow) holds k1..k11; k10 is a test lead's (in the
list, in no report).
  Ann: in k1 k2 k11 = 3; out k4 = 1 (answered 1); missed k3 = 1; within 20 s: k1 k11 = 2
       (share 0.667); talk 120 + 60 + 0 + 300 + 40 = 520 over 4 answered calls: 130.0.
  Bob: in k6 k9 = 2; out k7 = 1 (answered 0); missed k5 = 1; within 20 s: k6 (20 s is
       within) k9 = 2 (1.0); talk 90 + 30 = 120 over 2: 60.0.
  nobody: missed k8 = 1.
  Within 5 s instead: Ann k11 = 1, Bob k9 = 1.
Call backs made in March: Ann's three (one done in time, one late, one open): 1/3; Bob's
one, done in time: 1/1; Ann's of February is not counted.

Who sees what in the list: Ann sees her conversations, the unassigned one and the calls
she took: every call but Olga's k5 k6 k7 (10). Bob sees Olga's, the unassigned one and the
call he took in Ivan's conversation: k5 k6 k7 k8 k9 (5). The head sees all 13.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.journal import Journal
from crm_core.models import Call, ChannelAccount, Contact, Conversation, Message, Task, Team
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.settings import Settings

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
MSK = ZoneInfo("Europe/Moscow")
MARCH = "from=2026-03-01&to=2026-03-31"


def msk(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=MSK)


def add_call(
    session: Session,
    conversation: Conversation,
    key: str,
    started: datetime,
    *,
    direction: str = "in",
    disposition: str = "answered",
    manager_id: int | None = None,
    ring: int | None = None,
    talk: int = 0,
    message_id: int | None = None,
    voicemail: dict[str, Any] | None = None,
    account_id: int | None = None,
) -> Call:
    """A call stored as a line would store it (tests seed the table directly)."""
    answered = started + timedelta(seconds=ring) if ring is not None else None
    call = Call(
        call_key=f"sip:{key}@test",
        channel_account_id=account_id or conversation.channel_account_id,
        contact_id=conversation.contact_id,
        conversation_id=conversation.id,
        message_id=message_id,
        direction=direction,
        caller="+79160000000" if direction == "in" else "sip:office",
        callee="sip:office" if direction == "in" else "+79160000000",
        manager_id=manager_id,
        started_at=started,
        answered_at=answered,
        ended_at=(answered or started) + timedelta(seconds=talk + 1),
        duration_seconds=talk,
        disposition=disposition,
        voicemail=voicemail,
        created_at=started,
    )
    session.add(call)
    session.flush()
    return call


def _seed(session: Session) -> dict[str, Any]:
    journal = Journal("test", msk(1, 9, month=2))
    people = {}
    for name, role in (("ann", Role.MANAGER), ("bob", Role.MANAGER), ("head", Role.HEAD)):
        people[name] = create_manager(
            session,
            journal,
            email=f"{name}@example.test",
            name=name.title(),
            role=role,
            team="Sales" if role is Role.MANAGER else None,
        ).id
    tokens = {n: create_api_token(session, journal, n, i)[1] for n, i in people.items()}
    journal.flush(session)
    team = session.scalar(select(Team.id).where(Team.name == "Sales"))
    office = ChannelAccount(channel="phone", key="office", title="Office", created_at=msk(1, 9))
    shop = ChannelAccount(channel="phone", key="shop", title="Shop", created_at=msk(1, 9))
    session.add_all([office, shop])
    session.flush()

    def conversation(name: str, owner: int | None, test: bool = False) -> Conversation:
        contact = Contact(name=name, is_test=test, created_at=msk(1, 9), updated_at=msk(1, 9))
        session.add(contact)
        session.flush()
        row = Conversation(
            contact_id=contact.id,
            channel_account_id=office.id,
            status="open",
            assignee_id=owner,
            team_id=team,
            tags=[],
            opened_at=msk(1, 9),
            last_message_at=msk(1, 9),
        )
        session.add(row)
        session.flush()
        return row

    ann, bob = people["ann"], people["bob"]
    ivan = conversation("Ivan", ann)
    olga = conversation("Olga", bob)
    pyotr = conversation("Pyotr", None)
    test = conversation("Test lead", ann, test=True)
    voicemail = {
        "name": "voicemail.wav",
        "content_type": "audio/wav",
        "size": 4,
        "storage_key": "voicemail/ab/abcd",
    }
    message = Message(
        conversation_id=olga.id,
        channel_account_id=office.id,
        direction="in",
        author_kind="contact",
        text="Voicemail from +79160000000, 0:00",
        attachments=[{"name": "note.txt", "content_type": "text/plain", "size": 1}, voicemail],
        external_id="sip:k5@test",
        delivery_status="received",
        occurred_at=msk(6, 14),
        created_at=msk(6, 14),
    )
    session.add(message)
    session.flush()
    calls = [
        add_call(session, ivan, "k0", msk(28, 23, 30, month=2), manager_id=ann, ring=5, talk=10),
        add_call(session, ivan, "k1", msk(2, 10), manager_id=ann, ring=10, talk=120),
        add_call(session, ivan, "k2", msk(3, 11), manager_id=ann, ring=30, talk=60),
        add_call(session, ivan, "k3", msk(4, 12), disposition="missed"),
        add_call(
            session, ivan, "k4", msk(5, 13), direction="out", manager_id=ann, ring=5, talk=300
        ),
        add_call(
            session,
            olga,
            "k5",
            msk(6, 14),
            disposition="voicemail",
            message_id=message.id,
            voicemail=voicemail,
        ),
        add_call(session, olga, "k6", msk(10, 9), manager_id=bob, ring=20, talk=90),
        add_call(
            session,
            olga,
            "k7",
            msk(11, 10),
            direction="out",
            disposition="busy",
            manager_id=bob,
            account_id=shop.id,
        ),
        add_call(session, pyotr, "k8", msk(12, 10), disposition="busy", account_id=shop.id),
        add_call(session, ivan, "k9", msk(13, 10), manager_id=bob, ring=3, talk=30),
        add_call(session, test, "k10", msk(15, 10), manager_id=ann, ring=2, talk=100),
        add_call(session, ivan, "k11", msk(31, 23, 30), manager_id=ann, ring=4, talk=40),
        add_call(
            session,
            ivan,
            "k12",
            msk(1, 0, 30, month=4),
            direction="out",
            manager_id=ann,
            ring=6,
            talk=50,
        ),
    ]
    tasks = [
        (ann, msk(4, 12), msk(4, 12, 15), msk(4, 12, 10)),  # in time
        (ann, msk(6, 10), msk(6, 10, 15), msk(6, 11)),  # late
        (ann, msk(20, 10), msk(20, 10, 15), None),  # open
        (bob, msk(6, 14), msk(6, 14, 15), msk(6, 14, 5)),  # in time
        (ann, msk(27, 10, month=2), msk(27, 10, 15, month=2), msk(27, 10, 5, month=2)),  # Feb
    ]
    for assignee, created, due, done in tasks:
        session.add(
            Task(
                kind="call_back",
                title="Call the client back",
                status="done" if done else "open",
                assignee_id=assignee,
                due_at=due,
                done_at=done,
                contact_id=ivan.contact_id,
                created_at=created,
            )
        )
    return {
        "ids": people,
        "tokens": tokens,
        "calls": {f"k{n}": call.id for n, call in enumerate(calls)},
        "contacts": {"ivan": ivan.contact_id, "olga": olga.contact_id},
        "message": message.id,
    }


@pytest.fixture
async def seeded(
    database_url: str, db: Database, aiohttp_client: ClientFactory, tmp_path: Path
) -> tuple[Client, dict[str, Any]]:
    data = await db.write(_seed)
    settings = Settings(
        database_url=database_url, media_dir=str(tmp_path / "media"), timezone="Europe/Moscow"
    )
    client = await aiohttp_client(create_app(settings, clock=ManualClock(msk(20, 12, month=4))))
    return client, data


def _auth(data: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {data['tokens'][who]}"}


async def _keys(client: Client, data: dict[str, Any], who: str, query: str = "") -> list[str]:
    """The calls' keys (k0...) the list gives ``who``, in its order."""
    response = await client.get(f"/api/v1/calls?limit=200&{query}", headers=_auth(data, who))
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["next_after"] is None
    names = {v: k for k, v in data["calls"].items()}
    return [names[item["id"]] for item in body["items"]]


def _ks(*numbers: int) -> list[str]:
    """Keys newest first (the list's order)."""
    return [f"k{n}" for n in sorted(numbers, reverse=True)]


async def test_each_viewer_sees_the_calls_in_their_scope_newest_first(
    seeded: tuple[Client, dict[str, Any]],
) -> None:
    client, data = seeded
    assert await _keys(client, data, "head") == _ks(*range(13))
    assert await _keys(client, data, "ann") == _ks(0, 1, 2, 3, 4, 8, 9, 10, 11, 12)
    assert await _keys(client, data, "bob") == _ks(5, 6, 7, 8, 9)


async def test_the_filters(seeded: tuple[Client, dict[str, Any]]) -> None:
    client, data = seeded
    ann, bob = data["ids"]["ann"], data["ids"]["bob"]
    expected = {
        "direction=out": _ks(4, 7, 12),
        "direction=in": _ks(0, 1, 2, 3, 5, 6, 8, 9, 10, 11),
        "disposition=missed": _ks(3, 5, 8),
        "disposition=voicemail": _ks(5),
        "disposition=busy": _ks(7, 8),
        "disposition=answered&direction=out": _ks(4, 12),
        f"manager_id={bob}": _ks(5, 6, 7, 9),
        f"manager_id={ann}": _ks(0, 1, 2, 3, 4, 10, 11, 12),
        "line=shop": _ks(7, 8),
        "line=nowhere": [],
        MARCH: _ks(*range(1, 12)),  # 28.02 23:30 and 01.04 00:30 Moscow are out
        "from=2026-03-31": _ks(11, 12),
        "to=2026-02-28": _ks(0),
        f"direction=in&disposition=answered&manager_id={ann}&{MARCH}": _ks(1, 2, 10, 11),
        f"contact_id={data['contacts']['olga']}": _ks(5, 6, 7),
    }
    for query, keys in expected.items():
        assert await _keys(client, data, "head", query) == keys, query
    # an empty parameter is not a filter the schema allows: 400, naming it (the page
    # leaves out the filters it does not use)
    for name in ("line", "direction", "disposition", "from", "to"):
        empty = await client.get(f"/api/v1/calls?{name}=", headers=_auth(data, "head"))
        assert empty.status == 400, name
        assert (await empty.json())["errors"][0]["field"] == name
    # The filters narrow a manager's own scope, never widen it.
    assert await _keys(client, data, "ann", f"manager_id={bob}") == _ks(9)
    assert await _keys(client, data, "bob", "disposition=missed") == _ks(5, 8)


async def test_items_carry_names_line_ring_time_and_the_voicemail(
    seeded: tuple[Client, dict[str, Any]],
) -> None:
    client, data = seeded
    response = await client.get("/api/v1/calls?limit=200", headers=_auth(data, "head"))
    items = {item["call_key"]: item for item in (await response.json())["items"]}
    missed = items["sip:k3@test"]
    assert (missed["contact_name"], missed["manager_id"], missed["owner_id"]) == (
        "Ivan",
        None,
        data["ids"]["ann"],
    )
    assert missed["manager_name"] == "Ann"  # whose call back it is
    assert (missed["ring_seconds"], missed["voicemail_url"], missed["line"]) == (
        None,
        None,
        "office",
    )
    took = items["sip:k9@test"]
    assert (took["manager_name"], took["ring_seconds"], took["duration_seconds"]) == ("Bob", 3, 30)
    nobody = items["sip:k8@test"]
    assert (nobody["manager_name"], nobody["owner_id"], nobody["line"]) == (None, None, "shop")
    voicemail = items["sip:k5@test"]
    url = f"/api/v1/messages/{data['message']}/attachments/1"  # the second attachment
    assert voicemail["voicemail_url"] == url
    assert voicemail["contact_name"] == "Olga"
    assert datetime.fromisoformat(voicemail["started_at"]) == msk(6, 14)


async def test_keyset_paging_walks_every_call_once(seeded: tuple[Client, dict[str, Any]]) -> None:
    client, data = seeded
    seen: list[int] = []
    after = None
    pages = 0
    while True:
        query = "limit=5" + (f"&after={after}" if after else "")
        response = await client.get(f"/api/v1/calls?{query}", headers=_auth(data, "head"))
        body = await response.json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        after = body["next_after"]
        if after is None:
            break
        assert after == body["items"][-1]["id"]
    assert pages == 3  # 5 + 5 + 3
    assert seen == sorted(data["calls"].values(), reverse=True)
    filtered = await client.get(
        f"/api/v1/calls?limit=2&direction=out&after={data['calls']['k12']}",
        headers=_auth(data, "head"),
    )
    assert [i["id"] for i in (await filtered.json())["items"]] == [
        data["calls"]["k7"],
        data["calls"]["k4"],
    ]


async def test_a_contact_outside_the_scope_is_not_found(
    seeded: tuple[Client, dict[str, Any]],
) -> None:
    client, data = seeded
    olga = data["contacts"]["olga"]
    response = await client.get(f"/api/v1/calls?contact_id={olga}", headers=_auth(data, "ann"))
    assert response.status == 404
    assert await _keys(client, data, "bob", f"contact_id={olga}") == _ks(5, 6, 7)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("direction=sideways", "direction"),
        ("disposition=lost", "disposition"),
        ("manager_id=ann", "manager_id"),
        ("manager_id=0", "manager_id"),
        ("contact_id=-1", "contact_id"),
        ("from=march", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-03-31&to=2026-03-01", "to"),
        ("from=0001-01-01", "from"),
        ("to=9999-12-31", "to"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("after=x", "after"),
        ("line=" + "x" * 121, "line"),
        ("line=a%00b", "line"),
    ],
)
async def test_bad_parameters_get_a_400_naming_the_field(
    seeded: tuple[Client, dict[str, Any]], query: str, field: str
) -> None:
    client, data = seeded
    response = await client.get(f"/api/v1/calls?{query}", headers=_auth(data, "head"))
    assert response.status == 400, (query, await response.text())
    body = await response.json()
    assert body["error"] == "invalid_query"
    assert body["message"].startswith(f"{field}:"), body


async def test_calls_per_manager_in_march(seeded: tuple[Client, dict[str, Any]]) -> None:
    client, data = seeded
    response = await client.get(f"/api/v1/reports/calls?{MARCH}", headers=_auth(data, "head"))
    assert response.status == 200, await response.text()
    report = await response.json()
    assert report["answer_within_seconds"] == 20
    rows = {r["manager"]: r for r in report["managers"]}
    assert list(rows) == ["Ann", "Bob", None]
    ann, bob, nobody = rows["Ann"], rows["Bob"], rows[None]
    assert (ann["calls_in"], ann["calls_out"], ann["calls_out_answered"], ann["calls_missed"]) == (
        3,
        1,
        1,
        1,
    )
    assert (ann["answered_within"], ann["answered_within_share"]) == (2, 0.667)
    assert (ann["talk_seconds"], ann["average_talk_seconds"]) == (520, 130.0)
    assert (ann["callbacks"], ann["callbacks_within_sla"], ann["callbacks_within_sla_share"]) == (
        3,
        1,
        0.333,
    )
    assert (bob["calls_in"], bob["calls_out"], bob["calls_out_answered"], bob["calls_missed"]) == (
        2,
        1,
        0,
        1,
    )
    assert (bob["answered_within"], bob["answered_within_share"]) == (2, 1.0)
    assert (bob["talk_seconds"], bob["average_talk_seconds"]) == (120, 60.0)
    assert (bob["callbacks"], bob["callbacks_within_sla_share"]) == (1, 1.0)
    assert (nobody["calls_missed"], nobody["calls_in"], nobody["average_talk_seconds"]) == (
        1,
        0,
        None,
    )
    assert nobody["answered_within_share"] is None
    totals = report["totals"]
    assert (totals["calls_in"], totals["calls_out"], totals["calls_missed"]) == (5, 2, 3)
    assert (totals["talk_seconds"], totals["answered_within"]) == (640, 4)

    quick = await client.get(
        f"/api/v1/reports/calls?{MARCH}&answer_within=5", headers=_auth(data, "head")
    )
    rows = {r["manager"]: r for r in (await quick.json())["managers"]}
    assert (rows["Ann"]["answered_within"], rows["Bob"]["answered_within"]) == (1, 1)
    shop = await client.get(f"/api/v1/reports/calls?{MARCH}&line=shop", headers=_auth(data, "head"))
    rows = {r["manager"]: r for r in (await shop.json())["managers"]}
    assert (rows["Bob"]["calls_out"], rows["Bob"]["calls_in"], rows[None]["calls_missed"]) == (
        1,
        0,
        1,
    )


async def test_a_manager_gets_only_their_own_call_numbers(
    seeded: tuple[Client, dict[str, Any]],
) -> None:
    client, data = seeded
    own = await client.get(f"/api/v1/reports/calls?{MARCH}", headers=_auth(data, "ann"))
    report = await own.json()
    assert [r["manager"] for r in report["managers"]] == ["Ann"]
    assert report["totals"]["calls_in"] == 3
    bob = data["ids"]["bob"]
    theirs = await client.get(
        f"/api/v1/reports/calls?{MARCH}&manager_id={bob}", headers=_auth(data, "ann")
    )
    assert (await theirs.json())["managers"] == []


async def test_the_calls_report_exports_and_refuses_bad_parameters(
    seeded: tuple[Client, dict[str, Any]],
) -> None:
    client, data = seeded
    head = _auth(data, "head")
    exported = await client.get(f"/api/v1/reports/calls?{MARCH}&format=csv", headers=head)
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO((await exported.read()).decode("utf-8-sig"))))
    header = rows[0]
    assert "answered_within_20s" in header
    ann = next(r for r in rows[1:] if r[1] == "Ann")
    assert ann[header.index("talk_seconds")] == "520"
    assert ann[header.index("average_talk_seconds")] == "130.0"
    for query, field in (
        ("answer_within=0", "answer_within"),
        ("answer_within=soon", "answer_within"),
        ("line=a%00b", "line"),
        ("answer_within=%C2%B2", "answer_within"),  # a superscript two: a digit, not a number
        ("answer_within=" + "9" * 5000, "answer_within"),  # past what int() reads
        ("from=2026-03-31&to=2026-03-01", "to"),
        ("format=pdf", "format"),
        ("team=Nobody", "team"),
        ("from=2026-03-01&to=9999-12-31", "to"),
    ):
        response = await client.get(f"/api/v1/reports/calls?{query}", headers=head)
        assert response.status == 400, (query, await response.text())
        assert (await response.json())["message"].startswith(f"{field}:"), query
