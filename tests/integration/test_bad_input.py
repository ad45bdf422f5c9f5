"""Input the databases cannot store is refused at the edge, the same on both.

A NUL in any text field or parameter, a date-time with no UTC equivalent, a number
where the schema says date-time or boolean: each is a 400 naming the field, and
nothing is written. What a channel brings in (not the API) is kept, with the
character replaced.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from crm_core.db import Database
from crm_core.ingest import IngestService
from crm_core.models import Contact, Message
from hub.keys import INGEST
from tests.factories import inbound, phone, table_counts
from tests.integration.conftest import World, inbound_body

NUL = "a\x00b"


def _bodies(world: World) -> list[tuple[str, str, str, dict[str, Any] | None, str]]:
    """(who, method, path, body, field named in the error)"""
    conversation = f"/api/v1/conversations/{world.conversations['ann']}"
    deal = world.deals["ann"]
    task = world.tasks["ann"]
    new = inbound_body(9)
    return [
        ("integration", "POST", "/api/v1/inbound", new | {"text": NUL}, "text"),
        ("integration", "POST", "/api/v1/inbound", new | {"external_id": NUL}, "external_id"),
        (
            "integration",
            "POST",
            "/api/v1/inbound",
            new | {"channel_account": NUL},
            "channel_account",
        ),
        (
            "integration",
            "POST",
            "/api/v1/inbound",
            new | {"sender": new["sender"] | {"name": NUL}},
            "sender.name",
        ),
        (
            "integration",
            "POST",
            "/api/v1/inbound",
            new | {"sender": {"identities": [{"kind": "email", "value": f"x{NUL}@example.com"}]}},
            "sender.identities[0].value",
        ),
        ("ann", "POST", f"{conversation}/notes", {"text": NUL}, "text"),
        (
            "ann",
            "POST",
            f"{conversation}/messages",
            {"text": NUL},
            "text",
        ),
        ("ann", "POST", "/api/v1/tasks", {"title": NUL, "deal_id": deal}, "title"),
        ("ann", "PATCH", f"/api/v1/tasks/{task}", {"title": NUL}, "title"),
        ("ann", "POST", f"/api/v1/deals/{deal}/stage", {"stage": NUL}, "stage"),
        (
            "ann",
            "POST",
            f"/api/v1/deals/{deal}/stage",
            {"stage": "lost", "lost_reason": NUL},
            "lost_reason",
        ),
        (
            "admin",
            "POST",
            "/api/v1/managers",
            {"email": "new@example.test", "name": NUL, "password": "long-enough-pass"},
            "name",
        ),
        ("admin", "PATCH", f"/api/v1/managers/{world.ids['bob']}", {"name": NUL}, "name"),
        ("anonymous", "POST", "/api/v1/session", {"email": NUL, "password": "x"}, "email"),
        (
            "anonymous",
            "POST",
            "/api/v1/session",
            {"email": "ann@example.test", "password": NUL},
            "password",
        ),
    ]


async def test_a_nul_in_any_body_field_is_a_400_naming_it(world: World, db: Database) -> None:
    before = await table_counts(db)
    for who, method, path, body, field in _bodies(world):
        headers = world.auth.get(who, {})
        response = await world.client.request(method, path, json=body, headers=headers)
        answer = await response.json()
        assert response.status == 400, (path, field, answer)
        assert answer["errors"][0]["field"] == field, (path, answer)
        assert "NUL" in answer["message"], answer
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/deals?funnel=a%00b",
        "/api/v1/inbox?channel=%00",
        "/api/v1/tasks?view=mine%00",
        "/api/v1/funnels/cons%00ultation/board",
        "/api/v1/conversations?status=open%00",
    ],
)
async def test_a_nul_in_a_parameter_is_a_400_naming_it(world: World, path: str) -> None:
    response = await world.client.get(path, headers=world.auth["head"])
    answer = await response.json()
    assert response.status == 400, answer
    assert answer["error"] in ("invalid_query", "invalid_path")
    assert "NUL" in answer["message"]


async def test_a_routing_document_that_cannot_be_stored_is_refused_whole(
    world: World, db: Database
) -> None:
    current = await (await world.client.get("/api/v1/routing", headers=world.auth["admin"])).json()
    document = current["document"]
    teams = {f"Sal\x00{name}": team for name, team in document["teams"].items()}
    rules = [rule | {"team": f"Sal\x00{rule['team']}"} for rule in document["rules"]]
    bad = document | {"teams": teams, "rules": rules}
    before = await table_counts(db)
    response = await world.client.put("/api/v1/routing", json=bad, headers=world.auth["admin"])
    answer = await response.json()
    assert response.status == 400, answer
    # The field is named; the NUL it echoes comes back as U+FFFD (no NUL in any answer).
    assert answer["errors"][0]["field"] == "teams.Sal\ufffdSales"
    assert await table_counts(db) == before
    # Ingest goes on with the routing in force.
    ingest = await world.client.post(
        "/api/v1/inbound", json=inbound_body(7), headers=world.auth["integration"]
    )
    assert ingest.status == 201, await ingest.text()


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_date_time_without_a_utc_equivalent_is_a_400(
    world: World, db: Database, moment: str
) -> None:
    before = await table_counts(db)
    attempts = [
        ("integration", "POST", "/api/v1/inbound", inbound_body(8) | {"occurred_at": moment}),
        ("ann", "POST", "/api/v1/tasks", {"title": "call", "due_at": moment}),
        ("ann", "PATCH", f"/api/v1/tasks/{world.tasks['ann']}", {"due_at": moment}),
    ]
    for who, method, path, body in attempts:
        response = await world.client.request(method, path, json=body, headers=world.auth[who])
        answer = await response.json()
        assert response.status == 400, (path, answer)
        assert answer["errors"][0]["field"] in ("occurred_at", "due_at"), answer
    assert await table_counts(db) == before


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "field"),
    [
        ("ann", "POST", "/api/v1/tasks", {"title": "call", "due_at": 0}, "due_at"),
        ("ann", "PATCH", "/api/v1/tasks/{task}", {"due_at": 1700000000}, "due_at"),
        ("integration", "POST", "/api/v1/inbound", {"occurred_at": 0}, "occurred_at"),
        ("admin", "PATCH", "/api/v1/managers/{bob}", {"active": 0}, "active"),
        ("admin", "PATCH", "/api/v1/teams/{team}", {"shared_work": 1}, "shared_work"),
        ("admin", "PATCH", "/api/v1/managers/{bob}", {"capacity": "10"}, "capacity"),
    ],
)
async def test_numbers_are_not_dates_nor_booleans(
    world: World, db: Database, who: str, method: str, path: str, body: dict[str, Any], field: str
) -> None:
    teams = await (await world.client.get("/api/v1/teams", headers=world.auth["admin"])).json()
    path = path.format(task=world.tasks["ann"], bob=world.ids["bob"], team=teams["items"][0]["id"])
    if path == "/api/v1/inbound":
        body = inbound_body(11) | body
    before = await table_counts(db)
    response = await world.client.request(method, path, json=body, headers=world.auth[who])
    answer = await response.json()
    assert response.status == 400, answer
    assert answer["errors"][0]["field"] == field, answer
    assert await table_counts(db) == before


async def test_a_channel_keeps_a_message_with_a_nul_replaced(world: World, db: Database) -> None:
    """A mail or a form is the client's: one unstorable character does not lose it."""
    service: IngestService = world.client.app[INGEST]
    message = inbound(phone("+79165550000"), name="Ив\x00ан", text="кластер\x00 \ud800?")
    result = await service.ingest(message)

    def stored(session: Session) -> tuple[str, str | None]:
        text = session.scalar(select(Message.text).where(Message.id == result.message_id))
        name = session.scalar(select(Contact.name).where(Contact.id == result.contact_id))
        return str(text), name

    assert await db.read(stored) == ("кластер\ufffd \ufffd?", "Ив\ufffdан")
    again = await service.ingest(message)
    assert again.duplicate
    assert again.message_id == result.message_id
