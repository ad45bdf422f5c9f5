"""What the widget's socket refuses: other origins, malformed frames, wrong identities,
too much of anything; and what a visitor may never see."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import Contact, ContactIdentity, Conversation, Message, SiteVisitor
from hub.site_chat import socket as widget_socket
from tests.factories import count_rows, table_counts
from tests.integration.site_chat.conftest import (
    PAGE,
    SITE,
    ClientFactory,
    Hub,
    make_hub,
    say,
    user_hash,
    widget_table,
)


def _hello(**overrides: Any) -> dict[str, Any]:
    return {"type": "hello", "key": "cloud", "token": None, "page": PAGE, **overrides}


async def test_other_origins_get_no_widget(hub: Hub, db: Database) -> None:
    before = await table_counts(db)
    # the loader's question
    config = await hub.client.get("/widget/v1/config?key=cloud", headers={"Origin": SITE})
    assert config.status == 200
    assert config.headers["Access-Control-Allow-Origin"] == SITE
    refused = await hub.client.get(
        "/widget/v1/config?key=cloud", headers={"Origin": "https://evil.example"}
    )
    assert refused.status == 403
    assert (await refused.json())["error"] == "origin_not_allowed"
    # the frame: framed by allowed origins only
    frame = await hub.client.get(f"/widget/frame?key=cloud&host={SITE}")
    assert frame.status == 200
    assert f"frame-ancestors {SITE};" in frame.headers["Content-Security-Policy"]
    other = await hub.client.get("/widget/frame?key=cloud&host=https://evil.example")
    assert other.status == 403
    # the socket: a foreign handshake, and a page of another origin
    foreign = await hub.client.get(
        "/widget/v1/socket",
        headers={
            "Origin": "https://evil.example",
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
    )
    assert foreign.status == 403
    evil_page = {**PAGE, "origin": "https://evil.example"}
    assert await hub.closed_with(_hello(page=evil_page)) == 4403
    assert await hub.closed_with(_hello(key="nope")) == 4404
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        json.dumps({"type": "message", "id": "a", "text": "before hello"}),
        json.dumps({"type": "hello", "key": "cloud"}),  # no page
        json.dumps({"type": "hello", "key": "cloud", "page": {"url": 5}}),
        json.dumps({"type": "launch"}),
    ],
)
async def test_a_malformed_first_frame_closes_with_4400_and_writes_nothing(
    hub: Hub, db: Database, frame: str
) -> None:
    before = await table_counts(db)
    assert await hub.closed_with(frame) == 4400
    assert await table_counts(db) == before


async def test_malformed_frames_later_close_and_write_nothing(hub: Hub, db: Database) -> None:
    for bad in (
        {"type": "message", "id": "bad id with spaces", "text": "x"},
        {"type": "message", "id": "ok", "text": 5},
        {"type": "message", "id": "ok", "text": "x", "files": "nope"},
        {"type": "typing", "on": "yes"},
        {"type": "read", "up_to": -1},
        _hello(),
    ):
        socket, _ = await hub.visit()
        before = await count_rows(db, Message)
        await socket.send_json(bad)
        message = await socket.receive(timeout=10)
        assert message.data == 4400, bad
        assert await count_rows(db, Message) == before
        await socket.close()
    socket, _ = await hub.visit()
    await socket.send_bytes(b"\x00\x01")
    assert (await socket.receive(timeout=10)).data == 4400
    socket, _ = await hub.visit()
    await socket.send_str(json.dumps({"type": "ping", "pad": "x" * 70_000}))
    assert (await socket.receive(timeout=10)).data == 1009  # over 64 KiB


async def test_no_hello_in_time_closes_with_4408(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(widget_socket, "HELLO_SECONDS", 0.2)
    socket = await hub.client.ws_connect("/widget/v1/socket")
    assert (await socket.receive(timeout=10)).data == 4408


async def test_bad_text_and_missing_fields_get_an_error_and_nothing_is_written(
    hub: Hub, db: Database
) -> None:
    socket, _ = await hub.visit()
    before = await table_counts(db)
    assert (await say(socket, "a", "   "))["code"] == "empty"
    assert (await say(socket, "b", "x" * 4001))["code"] == "too_long"
    assert (await say(socket, "c", "nul \x00 inside"))["code"] == "invalid"
    wrong = await say(socket, "d", "hi", contact={"email": "not-an-email"})
    assert wrong["field"] == "contact.email"
    stolen = await say(socket, "e", "hi", files=["site_chat/ab/abcdef"])
    assert stolen["code"] == "file_not_found"
    assert await table_counts(db) == before
    await socket.close()


async def test_verified_visitors_are_one_visitor_on_every_device(hub: Hub, db: Database) -> None:
    user = {"id": "42", "hash": user_hash("42"), "email": "CTO@Client.example", "name": "Olga"}
    laptop, welcome = await hub.visit(user=user)
    assert welcome["visitor"]["verified"] is True
    assert welcome["visitor"]["email"] == "cto@client.example"
    await say(laptop, "l-1", "from the laptop")
    await laptop.close()
    phone, on_phone = await hub.visit(user=user)  # another browser: a new token
    assert on_phone["token"] != welcome["token"]
    assert [m["text"] for m in on_phone["messages"]] == ["from the laptop"]
    await say(phone, "p-1", "from the phone")
    await phone.close()
    assert await count_rows(db, Conversation) == 1
    emails = await db.read(
        lambda s: list(
            s.scalars(select(ContactIdentity.value).where(ContactIdentity.kind == "email"))
        )
    )
    assert emails == ["cto@client.example"]  # trusted: the contact carries it


async def test_wrong_hashes_and_unverified_visitors_are_refused(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    hub = await make_hub(
        database_url, db, clock, aiohttp_client, tmp_path, widget_table(require_verified=True)
    )
    before = await table_counts(db)
    assert await hub.closed_with(_hello(user={"id": "42", "hash": user_hash("43")})) == 4401
    assert await hub.closed_with(_hello(user={"id": "42", "hash": ""})) == 4401
    assert await hub.closed_with(_hello()) == 4401  # anonymous, where verified is required
    assert await table_counts(db) == before
    socket, welcome = await hub.visit(user={"id": "42", "hash": user_hash("42")})
    assert welcome["visitor"]["verified"] is True
    await socket.close()


async def test_a_visitor_who_types_a_known_email_learns_nothing(hub: Hub, db: Database) -> None:
    # A client known by email has a conversation in this widget (another browser) and
    # one by the integration channel.
    owner, _ = await hub.visit()
    await say(
        owner, "o-1", "my secret cluster is prod-db-7", contact={"email": "boss@acme.example"}
    )
    await owner.close()
    other = await hub.client.post(
        "/api/v1/inbound",
        json={
            "channel": "api",
            "channel_account": "crm",
            "external_id": "crm-1",
            "sender": {
                "name": "The Boss",
                "identities": [{"kind": "email", "value": "boss@acme.example"}],
            },
            "text": "contract renewal, 2 million",
        },
        headers=hub.integration,
    )
    assert other.status in (200, 201), await other.text()
    # An impostor types the same email into a new browser's widget.
    impostor, welcome = await hub.visit()
    assert welcome["messages"] == []
    ack = await say(impostor, "i-1", "hi, it's me", contact={"email": "boss@acme.example"})
    assert ack["type"] == "ack"
    await impostor.close()
    again, resumed = await hub.visit(token=welcome["token"])
    await again.close()
    assert [m["text"] for m in resumed["messages"]] == ["hi, it's me"]
    assert resumed["visitor"] == {
        "name": None,
        "email": "boss@acme.example",
        "phone": None,
        "verified": False,
    }
    assert "prod-db-7" not in json.dumps(resumed)
    assert "renewal" not in json.dumps(resumed)
    # for the managers, one client with three conversations
    assert await count_rows(db, Contact, Contact.merged_into_id.is_(None)) == 1
    assert await count_rows(db, Conversation) == 3


async def test_limits_per_visitor_and_per_address(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    limits = {"messages_per_minute": 3, "sessions_per_minute": 2, "sockets_per_visitor": 2}
    hub = await make_hub(
        database_url, db, clock, aiohttp_client, tmp_path, widget_table(limits=limits)
    )
    socket, welcome = await hub.visit()
    for n in range(3):
        assert (await say(socket, f"m-{n}", f"message {n}"))["type"] == "ack"
    limited = await say(socket, "m-3", "one too many")
    assert limited["code"] == "rate_limited"
    assert await count_rows(db, Message) == 3
    second, _ = await hub.visit(token=welcome["token"])
    assert await hub.closed_with(_hello(token=welcome["token"])) == 4429  # a third tab
    await second.close()
    other, _ = await hub.visit()  # the second new visitor from this address
    assert await hub.closed_with(_hello()) == 4429  # the third within a minute
    await other.close()
    await socket.close()


async def test_out_of_hours_a_message_needs_a_way_back_and_becomes_a_lead(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(
        "teams:\n"
        "  Sales:\n"
        "    mode: evenly\n"
        "    include_unassigned: true\n"
        "    hours:\n"
        "      timezone: Europe/Moscow\n"
        "      weekly: {mon: ['09:00-18:00'], tue: ['09:00-18:00'], wed: ['09:00-18:00'],"
        " thu: ['09:00-18:00'], fri: ['09:00-18:00']}\n"
        "rules:\n"
        "  - name: everything\n"
        "    team: Sales\n"
    )
    hub = await make_hub(
        database_url,
        db,
        clock,
        aiohttp_client,
        tmp_path,
        widget_table(team="Sales"),
        routing_file=str(routing),
    )
    clock.set(clock.now().replace(hour=21))  # 00:00 in Moscow
    socket, welcome = await hub.visit()
    assert welcome["widget"]["open"] is False
    assert welcome["widget"]["hours"].startswith("Mon-Fri 09:00-18:00")
    refused = await say(socket, "n-1", "call me tomorrow")
    assert refused["code"] == "required"
    assert await count_rows(db, Message) == 0
    left = await say(socket, "n-2", "call me tomorrow", contact={"phone": "8 916 123-45-67"})
    assert left["type"] == "ack"
    more = await say(socket, "n-3", "after 10, please")  # the phone is known by now
    assert more["type"] == "ack", more
    await socket.close()
    visitor = await db.read(lambda s: s.scalars(select(SiteVisitor)).one())
    assert visitor.phone == "+79161234567"
    deals = await (await hub.client.get("/api/v1/deals", headers=hub.manager)).json()
    assert len(deals["items"]) == 1
    tasks = await (await hub.client.get("/api/v1/tasks", headers=hub.manager)).json()
    assert len(tasks["items"]) >= 1


async def test_files_are_the_visitors_own(hub: Hub, db: Database) -> None:
    socket, welcome = await hub.visit()
    auth = {"Authorization": f"Bearer {welcome['token']}"}
    upload = await hub.client.post(
        "/widget/v1/files?key=cloud",
        data=b"%PDF-1.4 offer",
        headers={**auth, "Content-Type": "application/pdf", "X-File-Name": "offer%20%D1%84.pdf"},
    )
    assert upload.status == 201, await upload.text()
    file = (await upload.json())["file"]
    assert file["name"] == "offer ф.pdf"
    ack = await say(socket, "f-1", "see attached", files=[file["id"]])
    assert ack["message"]["files"][0]["name"] == "offer ф.pdf"
    back = await hub.client.get(f"/widget/v1/files/{file['id']}?key=cloud", headers=auth)
    assert back.status == 200
    assert await back.read() == b"%PDF-1.4 offer"
    assert back.headers["Content-Disposition"].startswith("attachment")
    await socket.close()
    # another visitor can neither attach nor download it
    stranger, hers = await hub.visit()
    taken = await say(stranger, "s-1", "mine now", files=[file["id"]])
    assert taken["code"] == "file_not_found"
    theirs = {"Authorization": f"Bearer {hers['token']}"}
    denied = await hub.client.get(f"/widget/v1/files/{file['id']}?key=cloud", headers=theirs)
    assert denied.status == 404
    await stranger.close()
    # refused early: no token, a type not accepted, a body over the limit
    anonymous = await hub.client.post("/widget/v1/files?key=cloud", data=b"x")
    assert anonymous.status == 401
    script = await hub.client.post(
        "/widget/v1/files?key=cloud",
        data=b"<script>",
        headers={**auth, "Content-Type": "text/html"},
    )
    assert script.status == 415
    huge = await hub.client.post(
        "/widget/v1/files?key=cloud",
        data=io.BytesIO(b"x" * (10 * 1024 * 1024 + 1)),
        headers={**auth, "Content-Type": "application/pdf"},
    )
    assert huge.status == 413
    assert (await huge.json())["error"] == "body_too_large"
