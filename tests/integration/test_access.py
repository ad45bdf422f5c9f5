"""Who sees and changes what: every list and detail endpoint, per role, through HTTP.

Three clients write in; Ann's client, Bob's client and one nobody has taken yet.
Ann and Bob are managers of the Sales team; the head of sales and the admin see all.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import Message, OutboxMessage, Team
from tests.factories import count_rows
from tests.integration.conftest import World, inbound_body

Client = TestClient[Any, Any]


async def _ids(client: Client, path: str, headers: dict[str, str]) -> set[int]:
    response = await client.get(path, headers=headers)
    assert response.status == 200, await response.text()
    return {item["id"] for item in (await response.json())["items"]}


LISTS = {
    "/api/v1/conversations": "conversations",
    "/api/v1/contacts": "contacts",
    "/api/v1/deals": "deals",
    "/api/v1/tasks": "tasks",
    "/api/v1/inbox?view=all": "conversations",
}
DETAILS = {
    "conversations": "/api/v1/conversations/{}",
    "contacts": "/api/v1/contacts/{}",
    "deals": "/api/v1/deals/{}",
    "tasks": "/api/v1/tasks/{}",
}
SEES = {
    "ann": {"ann", "nobody"},
    "bob": {"bob", "nobody"},
    "head": {"ann", "bob", "nobody"},
    "admin": {"ann", "bob", "nobody"},
    "integration": {"ann", "bob", "nobody"},
}


@pytest.mark.parametrize("who", sorted(SEES))
async def test_each_list_and_detail_shows_only_what_the_role_may_see(
    world: World, who: str
) -> None:
    headers = world.auth[who]
    for path, kind in LISTS.items():
        table: dict[str, int] = getattr(world, kind)
        expected = {table[w] for w in SEES[who]}
        assert await _ids(world.client, path, headers) == expected, (who, path)
    for kind, template in DETAILS.items():
        table = getattr(world, kind)
        for whose, entity_id in table.items():
            response = await world.client.get(template.format(entity_id), headers=headers)
            assert response.status == (200 if whose in SEES[who] else 404), (who, kind, whose)
    timeline = await world.client.get(
        f"/api/v1/contacts/{world.contacts['bob']}/timeline", headers=headers
    )
    assert bool((await timeline.json())["items"]) == ("bob" in SEES[who])
    board = await (
        await world.client.get("/api/v1/funnels/consultation/board", headers=headers)
    ).json()
    on_board = {d["id"] for stage in board["stages"] for d in stage["deals"]}
    assert on_board == {world.deals[w] for w in SEES[who]}


async def test_a_manager_cannot_touch_a_colleagues_client(world: World, db: Database) -> None:
    ann = world.auth["ann"]
    bobs = world.conversations["bob"]
    attempts = [
        ("POST", f"/api/v1/conversations/{bobs}/messages", {"text": "hi"}),
        ("POST", f"/api/v1/conversations/{bobs}/notes", {"text": "mine now"}),
        ("POST", f"/api/v1/conversations/{bobs}/assign", {"manager_id": world.ids["ann"]}),
        ("POST", f"/api/v1/conversations/{bobs}/close", None),
        ("POST", f"/api/v1/conversations/{bobs}/read", None),
        ("POST", f"/api/v1/deals/{world.deals['bob']}/stage", {"stage": "contact_made"}),
        ("POST", f"/api/v1/tasks/{world.tasks['bob']}/complete", None),
        ("PATCH", f"/api/v1/tasks/{world.tasks['bob']}", {"title": "x"}),
        ("POST", "/api/v1/tasks", {"title": "spy", "deal_id": world.deals["bob"]}),
    ]
    outbox_before = await count_rows(db, OutboxMessage)
    for method, path, body in attempts:
        response = await world.client.request(method, path, json=body, headers=ann)
        assert response.status == 404, (path, await response.text())
    assert await count_rows(db, OutboxMessage) == outbox_before  # nothing was written


async def test_configuration_is_for_admins(world: World) -> None:
    for who, status in (("ann", 403), ("head", 403), ("admin", 200), ("integration", 200)):
        response = await world.client.get("/api/v1/routing", headers=world.auth[who])
        assert response.status == status, who
        response = await world.client.get("/api/v1/webhooks/subscriptions", headers=world.auth[who])
        assert response.status == status, who
    refused = await world.client.post(
        "/api/v1/inbound", json=inbound_body(9), headers=world.auth["ann"]
    )
    assert refused.status == 403


async def test_the_head_reassigns_and_visibility_follows(world: World) -> None:
    bobs = world.conversations["bob"]
    path = f"/api/v1/conversations/{bobs}/assign"
    moved = await world.client.post(
        path, json={"manager_id": world.ids["ann"]}, headers=world.auth["head"]
    )
    assert moved.status == 200
    assert (await moved.json())["assignee_id"] == world.ids["ann"]
    assert bobs in await _ids(world.client, "/api/v1/inbox?view=mine", world.auth["ann"])
    # The deal the conversation opened, and its open task, went with it.
    assert world.deals["bob"] in await _ids(world.client, "/api/v1/deals", world.auth["ann"])
    assert world.tasks["bob"] in await _ids(world.client, "/api/v1/tasks", world.auth["ann"])
    gone = await world.client.get(f"/api/v1/conversations/{bobs}", headers=world.auth["bob"])
    assert gone.status == 404
    # Ann may pass her own conversation on to Bob, and then it is no longer hers.
    back = await world.client.post(
        path, json={"manager_id": world.ids["bob"]}, headers=world.auth["ann"]
    )
    assert back.status == 200
    again = await world.client.get(f"/api/v1/conversations/{bobs}", headers=world.auth["ann"])
    assert again.status == 404
    nobody = await world.client.post(path, json={"manager_id": 999}, headers=world.auth["head"])
    assert nobody.status == 400


async def test_shared_team_work_shows_the_whole_team(world: World, db: Database) -> None:
    await db.write(lambda session: session.execute(update(Team).values(shared_work=True)))
    seen = await _ids(world.client, "/api/v1/conversations", world.auth["ann"])
    assert seen == set(world.conversations.values())
    deals = await _ids(world.client, "/api/v1/deals", world.auth["ann"])
    assert world.deals["bob"] in deals


async def test_unread_counts_and_read_marker(world: World) -> None:
    ann = world.auth["ann"]
    inbox = await (await world.client.get("/api/v1/inbox?view=mine", headers=ann)).json()
    assert inbox["counts"]["mine"] == 1
    (mine,) = [c for c in inbox["items"] if c["id"] == world.conversations["ann"]]
    assert mine["unread"] == 1
    assert mine["last_message_text"] == "Question 1"
    read = await world.client.post(f"/api/v1/conversations/{mine['id']}/read", headers=ann)
    assert read.status == 200
    inbox = await (await world.client.get("/api/v1/inbox?view=mine", headers=ann)).json()
    assert inbox["counts"]["mine"] == 0
    assert inbox["items"][0]["unread"] == 0
    again = {**inbound_body(1), "external_id": "lead-1-b", "text": "Are you there?"}
    await world.client.post("/api/v1/inbound", json=again, headers=world.auth["integration"])
    inbox = await (await world.client.get("/api/v1/inbox?view=mine", headers=ann)).json()
    assert inbox["items"][0]["unread"] == 1
    # The head has read nothing yet: the markers are per manager.
    head = await (
        await world.client.get("/api/v1/inbox?view=all", headers=world.auth["head"])
    ).json()
    assert head["counts"]["all"] == 3


async def test_a_note_stays_inside(world: World, db: Database) -> None:
    conversation = world.conversations["ann"]
    sends_before = await count_rows(db, OutboxMessage, OutboxMessage.topic.like("send.%"))
    note = await world.client.post(
        f"/api/v1/conversations/{conversation}/notes",
        json={"text": "Client asked for a discount"},
        headers=world.auth["ann"],
    )
    assert note.status == 201
    timeline = await (
        await world.client.get(
            f"/api/v1/contacts/{world.contacts['ann']}/timeline", headers=world.auth["ann"]
        )
    ).json()
    assert [m["direction"] for m in timeline["items"]] == ["in", "note"]
    assert timeline["items"][1]["author_name"] == "Ann"
    assert await count_rows(db, OutboxMessage, OutboxMessage.topic.like("send.%")) == sends_before


async def test_close_and_reopen(world: World) -> None:
    path = f"/api/v1/conversations/{world.conversations['ann']}"
    closed = await world.client.post(path + "/close", headers=world.auth["ann"])
    assert (await closed.json())["status"] == "closed"
    listed = await _ids(world.client, "/api/v1/inbox?view=mine&status=open", world.auth["ann"])
    assert world.conversations["ann"] not in listed
    reopened = await world.client.post(path + "/reopen", headers=world.auth["ann"])
    assert (await reopened.json())["status"] == "open"


async def test_people_are_configured_by_the_admin(world: World) -> None:
    client, admin = world.client, world.auth["admin"]
    new = {
        "email": "cat@example.test",
        "name": "Cat",
        "team": "Sales",
        "password": "long-password-1",
    }
    for who in ("ann", "head"):
        refused = await client.post("/api/v1/managers", json=new, headers=world.auth[who])
        assert refused.status == 403
    created = await client.post("/api/v1/managers", json=new, headers=admin)
    assert created.status == 201
    cat = await created.json()
    assert "password" not in json.dumps(cat)
    again = await client.post("/api/v1/managers", json=new, headers=admin)
    assert again.status == 409
    login = await client.post(
        "/api/v1/session", json={"email": "cat@example.test", "password": "long-password-1"}
    )
    assert login.status == 200
    off = await client.patch(f"/api/v1/managers/{cat['id']}", json={"active": False}, headers=admin)
    assert (await off.json())["active"] is False
    assert (await client.get("/api/v1/me")).status == 401  # the session ends with the account
    (team,) = (await (await client.get("/api/v1/teams", headers=admin)).json())["items"]
    shared = await client.patch(
        f"/api/v1/teams/{team['id']}", json={"shared_work": True}, headers=world.auth["ann"]
    )
    assert shared.status == 403
    shared = await client.patch(
        f"/api/v1/teams/{team['id']}", json={"shared_work": True}, headers=admin
    )
    assert (await shared.json())["shared_work"] is True
    seen = await _ids(client, "/api/v1/conversations", world.auth["ann"])
    assert world.conversations["bob"] in seen
    # The tokens' roles are re-read at once after a change.
    promoted = await client.patch(
        f"/api/v1/managers/{world.ids['ann']}", json={"role": "head"}, headers=admin
    )
    assert promoted.status == 200
    assert (await client.get("/api/v1/inbox?view=all", headers=world.auth["ann"])).status == 200
    seen = await _ids(client, "/api/v1/inbox?view=all", world.auth["ann"])
    assert seen == set(world.conversations.values())


async def test_task_views_mine_and_overdue(world: World, clock: ManualClock) -> None:
    ann = world.auth["ann"]
    assert await _ids(world.client, "/api/v1/tasks?view=mine", ann) == {world.tasks["ann"]}
    assert await _ids(world.client, "/api/v1/tasks?view=overdue", ann) == set()
    clock.advance(timedelta(days=2))
    overdue = await _ids(world.client, "/api/v1/tasks?view=overdue", ann)
    assert overdue == {world.tasks["ann"], world.tasks["nobody"]}
    refused = await world.client.get("/api/v1/tasks?view=mine", headers=world.auth["integration"])
    assert refused.status == 400


async def test_reading_one_conversation_leaves_the_others_unread(world: World) -> None:
    head = world.auth["head"]
    before = await (await world.client.get("/api/v1/inbox?view=all", headers=head)).json()
    assert before["counts"]["all"] == 3
    read = await world.client.post(
        f"/api/v1/conversations/{world.conversations['bob']}/read", headers=head
    )
    assert read.status == 200
    after = await (await world.client.get("/api/v1/inbox?view=all", headers=head)).json()
    assert after["counts"]["all"] == 2
    unread = {c["id"]: c["unread"] for c in after["items"]}
    assert unread == {
        world.conversations["ann"]: 1,
        world.conversations["bob"]: 0,
        world.conversations["nobody"]: 1,
    }


async def _bobs_telegram_conversation_of_anns_client(world: World) -> int:
    """Ann's client also writes to the Telegram bot; that conversation is Bob's."""
    body = inbound_body(1) | {
        "channel": "telegram",
        "channel_account": "salesbot",
        "external_id": "tg-1",
        "sender": {
            "identities": [
                {"kind": "phone", "value": "+79160000001"},
                {"kind": "telegram", "value": "5551"},
            ]
        },
    }
    created = await world.client.post(
        "/api/v1/inbound", json=body, headers=world.auth["integration"]
    )
    assert created.status == 201, await created.text()
    result = await created.json()
    assert result["contact_id"] == world.contacts["ann"]
    assign = await world.client.post(
        f"/api/v1/conversations/{result['conversation_id']}/assign",
        json={"manager_id": world.ids["bob"]},
        headers=world.auth["head"],
    )
    assert assign.status == 200, await assign.text()
    return int(result["conversation_id"])


async def test_replying_by_another_channel_keeps_to_the_managers_scope(
    world: World, db: Database
) -> None:
    """Ann answers her client "by Telegram", where the conversation is Bob's: 404 and
    nothing written, as for any other action on a colleague's conversation."""
    bobs = await _bobs_telegram_conversation_of_anns_client(world)
    outbox_before = await count_rows(db, OutboxMessage)
    messages_before = await count_rows(db, Message)
    response = await world.client.post(
        f"/api/v1/conversations/{world.conversations['ann']}/messages",
        json={"text": "written into Bob's chat", "channel_account": "salesbot"},
        headers=world.auth["ann"],
    )
    assert response.status == 404, await response.text()
    assert (await response.json())["error"] == "not_found"
    assert await count_rows(db, OutboxMessage) == outbox_before
    assert await count_rows(db, Message) == messages_before
    # Bob, whose conversation it is, answers there; so may the head of sales.
    for who in ("bob", "head"):
        own = await world.client.post(
            f"/api/v1/conversations/{bobs}/messages",
            json={"text": "hello"},
            headers=world.auth[who],
        )
        assert own.status == 202, await own.text()
    by_head = await world.client.post(
        f"/api/v1/conversations/{world.conversations['ann']}/messages",
        json={"text": "from the head", "channel_account": "salesbot"},
        headers=world.auth["head"],
    )
    assert by_head.status == 202, await by_head.text()
    assert (await by_head.json())["conversation_id"] == bobs


async def test_take_answers_404_for_what_the_manager_may_not_see(world: World) -> None:
    """Taking a colleague's conversation looks exactly like taking one that does not exist."""
    ann = world.auth["ann"]
    foreign = await world.client.post(
        f"/api/v1/conversations/{world.conversations['bob']}/take", headers=ann
    )
    missing = await world.client.post("/api/v1/conversations/999999/take", headers=ann)
    assert (foreign.status, missing.status) == (404, 404)
    assert await foreign.json() == await missing.json()


async def test_a_manager_rings_only_their_own_phone(world: World) -> None:
    """Click-to-call rings the named manager's phone first: a manager may not name a
    colleague (the head of sales may); without SIP the call then fails as 409."""
    contact = world.contacts["ann"]
    as_bob = await world.client.post(
        "/api/v1/calls",
        json={"contact_id": contact, "manager_id": world.ids["bob"]},
        headers=world.auth["ann"],
    )
    assert as_bob.status == 403, await as_bob.text()
    own = await world.client.post(
        "/api/v1/calls", json={"contact_id": contact}, headers=world.auth["ann"]
    )
    by_head = await world.client.post(
        "/api/v1/calls",
        json={"contact_id": contact, "manager_id": world.ids["bob"]},
        headers=world.auth["head"],
    )
    assert (own.status, by_head.status) == (409, 409)  # telephony is off in this hub
