"""Ids past 32 bits, on SQLite and PostgreSQL: the API takes 1..2**62 - 1 everywhere (paths,
queries, bodies), an id in range that names nothing is a 404 (never a 500), one out of range
a 400 naming the parameter; the columns and their sequences are 64-bit on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import BigInteger, Connection, bindparam, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from crm_core import migrate
from crm_core.db import Database
from crm_core.models import Base, UTCDateTime
from hub.api.ids import MAX_ID
from tests.factories import WHEN
from tests.integration.conftest import World, inbound_body

PAST_INT32 = 3_000_000_000
IN_RANGE = 4_611_686_018_427_387_000  # a body's manager_id just under 2**62 - 1
TOO_BIG = 2**62


async def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert body["error"]
    return body


async def test_an_id_in_range_that_names_nothing_is_not_found(world: World) -> None:
    admin = world.auth["admin"]
    for method, path in [
        ("GET", f"/api/v1/contacts/{PAST_INT32}"),
        ("GET", f"/api/v1/conversations/{PAST_INT32}"),
        ("GET", f"/api/v1/deals/{PAST_INT32}"),
        ("GET", f"/api/v1/tasks/{PAST_INT32}"),
        ("GET", f"/api/v1/webhooks/subscriptions/{PAST_INT32}"),
        ("GET", f"/api/v1/webhooks/subscriptions/{PAST_INT32}/deliveries"),
        ("GET", f"/api/v1/messages/{PAST_INT32}/attachments/0"),
        ("GET", f"/api/v1/calls?contact_id={PAST_INT32}"),
        ("GET", f"/api/v1/contacts/{MAX_ID}"),
        ("POST", f"/api/v1/merges/{PAST_INT32}/undo"),
        ("POST", f"/api/v1/tasks/{PAST_INT32}/complete"),
        ("POST", f"/api/v1/conversations/{PAST_INT32}/close"),
    ]:
        response = await world.client.request(method, path, headers=admin)
        assert (await _error(response, 404))["error"] == "not_found", path


async def test_pages_and_filters_past_int32_are_empty(world: World) -> None:
    admin = world.auth["admin"]
    for path in (
        "/api/v1/contacts",
        "/api/v1/conversations",
        "/api/v1/deals",
        "/api/v1/tasks",
        "/api/v1/webhooks/subscriptions",
    ):
        for after in (PAST_INT32, MAX_ID):
            response = await world.client.get(f"{path}?after={after}", headers=admin)
            assert response.status == 200, await response.text()
            assert await response.json() == {"items": [], "next_after": None}
    for query in (
        f"/api/v1/conversations?contact_id={PAST_INT32}",
        f"/api/v1/deals?contact_id={PAST_INT32}",
        f"/api/v1/tasks?assignee_id={PAST_INT32}",
        f"/api/v1/tasks?deal_id={IN_RANGE}",
    ):
        response = await world.client.get(query, headers=admin)
        assert response.status == 200, await response.text()
        assert (await response.json())["items"] == [], query
    ann = world.contacts["ann"]
    timeline = await world.client.get(
        f"/api/v1/contacts/{ann}/timeline?before={PAST_INT32}", headers=admin
    )
    assert timeline.status == 200, await timeline.text()
    assert len((await timeline.json())["items"]) == 1


async def test_body_ids_in_range_that_name_nothing_are_refused(world: World) -> None:
    client, admin = world.client, world.auth["admin"]
    assign = await client.post(
        f"/api/v1/conversations/{world.conversations['ann']}/assign",
        json={"manager_id": IN_RANGE},
        headers=admin,
    )
    assert str(IN_RANGE) in (await _error(assign, 400))["message"]
    task = {"title": "Call back", "contact_id": world.contacts["ann"], "assignee_id": IN_RANGE}
    await _error(await client.post("/api/v1/tasks", json=task, headers=admin), 409)
    on_nothing = {"title": "Call back", "contact_id": IN_RANGE}
    await _error(await client.post("/api/v1/tasks", json=on_nothing, headers=admin), 404)
    patch = await client.patch(
        f"/api/v1/tasks/{world.tasks['ann']}", json={"assignee_id": IN_RANGE}, headers=admin
    )
    await _error(patch, 409)


async def test_ids_out_of_range_are_a_400_naming_the_parameter(world: World) -> None:
    client, admin, ann = world.client, world.auth["admin"], world.contacts["ann"]
    for value in (TOO_BIG, 0, -1, 10**40, "seven", 1.5):
        for path, body, field in [
            (f"/api/v1/conversations/{world.conversations['ann']}/assign", {}, "manager_id"),
            ("/api/v1/tasks", {"title": "Call back"}, "assignee_id"),
            ("/api/v1/tasks", {"title": "Call back"}, "contact_id"),
            ("/api/v1/calls", {}, "contact_id"),
        ]:
            response = await client.post(path, json={**body, field: value}, headers=admin)
            error = await _error(response, 400)
            assert error["error"] == "invalid_body"
            assert [e["field"] for e in error["errors"]] == [field], (path, value, error)
    for raw in (str(TOO_BIG), "0", "-1", "abc", "1.5", "1e3", "%D9%A3", " 7", "9" * 5000):
        for method, path in (
            ("GET", f"/api/v1/contacts/{raw}"),
            ("POST", f"/api/v1/tasks/{raw}/complete"),
        ):
            error = await _error(await client.request(method, path, headers=admin), 400)
            assert error["error"] == "invalid_path", (path, error)
            assert error["message"].startswith("id: ")
            assert error["errors"][0]["field"] == "id"
    for raw in (str(TOO_BIG), "-1", "x", "9" * 5000):
        for path, name in [
            ("/api/v1/contacts", "after"),
            ("/api/v1/conversations", "contact_id"),
            ("/api/v1/deals", "contact_id"),
            ("/api/v1/tasks", "assignee_id"),
            ("/api/v1/tasks", "deal_id"),
            ("/api/v1/calls", "contact_id"),
            (f"/api/v1/contacts/{ann}/timeline", "before"),
            ("/api/v1/webhooks/subscriptions", "after"),
        ]:
            response = await client.get(f"{path}?{name}={raw}", headers=admin)
            error = await _error(response, 400)
            assert error["error"] == "invalid_query", (path, error)
            assert error["message"].startswith(f"{name}: ")
            message = error["message"][len(name) + 2 :]
            assert error["errors"] == [{"field": name, "message": message}]
    # An id is at least 1; a position to page after may be 0 (the start).
    zero = await world.client.get("/api/v1/deals?contact_id=0", headers=world.auth["admin"])
    await _error(zero, 400)
    start = await world.client.get("/api/v1/deals?after=0", headers=world.auth["admin"])
    assert start.status == 200


async def test_rows_stored_past_int32_read_and_grow_through_the_api(
    world: World, db: Database
) -> None:
    """A contact stored by hand with id 3000000000 reads back; the next contact the API
    makes gets the id after it (SQLite's rowid; PostgreSQL's sequence, moved there)."""

    def store(session: Session) -> None:
        session.execute(
            text(
                "INSERT INTO contacts (id, name, created_at, updated_at) "
                "VALUES (:id, 'Far away', :at, :at)"
            ).bindparams(bindparam("at", type_=UTCDateTime())),
            {"id": PAST_INT32, "at": WHEN},
        )
        if session.get_bind().dialect.name == "postgresql":
            session.execute(
                text("SELECT setval(pg_get_serial_sequence('contacts', 'id'), :id)"),
                {"id": PAST_INT32},
            )

    await db.write(store)
    client, admin = world.client, world.auth["admin"]
    card = await client.get(f"/api/v1/contacts/{PAST_INT32}", headers=admin)
    assert card.status == 200, await card.text()
    assert (await card.json())["id"] == PAST_INT32
    page = await client.get(f"/api/v1/contacts?after={PAST_INT32 - 1}", headers=admin)
    assert [c["id"] for c in (await page.json())["items"]] == [PAST_INT32]

    created = await client.post(
        "/api/v1/inbound", json=inbound_body(7), headers=world.auth["integration"]
    )
    assert created.status == 201, await created.text()
    result = await created.json()
    assert result["contact_id"] == PAST_INT32 + 1
    conversation = await client.get(
        f"/api/v1/conversations?contact_id={PAST_INT32 + 1}", headers=admin
    )
    assert [c["id"] for c in (await conversation.json())["items"]] == [result["conversation_id"]]


def _id_columns() -> set[tuple[str, str]]:
    """Every column the models declare 64-bit on PostgreSQL."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type.dialect_impl(dialect), BigInteger)
    }


# Keys that are not ids: a digest of a visitor's token, a stored file's key.
TEXT_KEYS = {("site_sessions", "token_sha256"), ("site_uploads", "storage_key")}


def test_every_key_and_reference_is_an_id_column() -> None:
    keys = {
        (table.name, column.name)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if column.primary_key or column.foreign_keys
    }
    assert keys - TEXT_KEYS <= _id_columns()
    assert {("conversation_reads", "last_read_message_id"), ("audit_log", "entity_id")} <= (
        _id_columns()
    )


async def _pg_types(url: str) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
    """Each column's data type, and each serial sequence's, from information_schema."""

    def work(session: Session) -> tuple[dict[tuple[str, str], str], dict[str, str]]:
        columns = session.execute(
            text(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'alembic_version'"
            )
        )
        sequences = session.execute(
            text(
                "SELECT sequence_name, data_type FROM information_schema.sequences "
                "WHERE sequence_schema = 'public'"
            )
        )
        return (
            {(t, c): d for t, c, d in columns},
            {str(name): str(kind) for name, kind in sequences},
        )

    database = Database(url)
    try:
        return await database.read(work)
    finally:
        await database.dispose()


def _diff(connection: Connection) -> list[Any]:
    return migrate.schema_diff(connection)


@pytest.mark.postgres
async def test_postgres_ids_are_bigint_and_the_migration_round_trips(pg_url: str) -> None:
    wanted = _id_columns()
    serials = {f"{table}_id_seq" for table, column in wanted if column == "id"}
    columns, sequences = await _pg_types(pg_url)
    assert {key: columns[key] for key in wanted} == dict.fromkeys(wanted, "bigint")
    assert {name: sequences[name] for name in serials} == dict.fromkeys(serials, "bigint")
    int4 = {key for key, kind in columns.items() if kind == "integer"}
    assert not {key for key in int4 if key[1] == "id" or key[1].endswith("_id")}

    await asyncio.to_thread(migrate.downgrade, pg_url, "0004_inbox")
    columns, sequences = await _pg_types(pg_url)
    # Only what existed at 0004 was 32-bit (later migrations add tables and columns).
    then = {key for key in wanted if key in columns}
    assert {("contacts", "id"), ("messages", "conversation_id")} <= then
    assert {columns[key] for key in then} == {"integer"}
    assert {sequences[name] for name in serials if name in sequences} == {"integer"}
    database = Database(pg_url)
    try:
        changes = await database.read(lambda s: _diff(s.connection()))
    finally:
        await database.dispose()
    retyped = {(c[0][2], c[0][3]) for c in changes if c[0][0] == "modify_type"}
    assert retyped == then  # what the models say and 0005 does are the same columns

    await asyncio.to_thread(migrate.upgrade, pg_url)
    columns, sequences = await _pg_types(pg_url)
    assert {columns[key] for key in wanted} == {"bigint"}
    assert {sequences[name] for name in serials} == {"bigint"}


async def test_sqlite_keys_stay_integer_primary_keys(sqlite_url: str) -> None:
    """SQLite needs no change: an INTEGER PRIMARY KEY is its 64-bit rowid."""
    database = Database(sqlite_url)
    try:
        info = await database.read(lambda s: s.execute(text("PRAGMA table_info(contacts)")).all())
        changes = await database.read(lambda s: _diff(s.connection()))
    finally:
        await database.dispose()
    assert [(row.name, row.type, row.pk) for row in info if row.name == "id"] == [
        ("id", "INTEGER", 1)
    ]
    assert changes == []
