"""``GET /api/v1/search`` on SQLite and PostgreSQL, over messages that came in through the
public inbound door (the ingest's raw SQL, so the index is kept by what really writes).

Ann's conversations: Иван Петров (phone, email, Telegram @Ivan_P) wrote about clusters;
Олег Ёлкин of «Рога и Копыта» wrote about a trial. Bob's: José Müller wrote about
PostgreSQL clusters. Ann never finds Bob's client nor his words; the head finds both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from crm_core import search as search_module
from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.enums import Role
from crm_core.ingest import IngestPolicy, IngestService
from crm_core.journal import Journal
from crm_core.models import Contact, Conversation, Deal, Message
from crm_core.people import create_api_token, create_manager
from hub.app import create_app
from hub.settings import Settings
from tests.factories import inbound, telegram

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]

CLIENTS: list[dict[str, Any]] = [
    {
        "owner": "ann",
        "sender": {
            "name": "Иван Петров",
            "identities": [
                {"kind": "phone", "value": "+7 916 123-45-67"},
                {"kind": "email", "value": "Ivan.Petrov@Example.COM"},
            ],
        },
        "texts": ["Здравствуйте! Нужны кластеры баз данных на три узла", "И ещё вопрос по цене"],
    },
    {
        "owner": "ann",
        "sender": {
            "name": "Олег Ёлкин",
            "company": "Рога и Копыта",
            "identities": [{"kind": "email", "value": "oleg@roga.test"}],
        },
        "texts": ["Хочу пробный период"],
    },
    {
        "owner": "bob",
        "sender": {
            "name": "José Müller",
            "identities": [{"kind": "phone", "value": "+49 30 7654321"}],
        },
        "texts": ["We run PostgreSQL clusters and need a managed one"],
    },
]


@pytest.fixture
async def hub(
    database_url: str, db: Database, aiohttp_client: ClientFactory, tmp_path: Path
) -> tuple[Client, dict[str, Any]]:
    clock = ManualClock()

    def people(session: Session) -> dict[str, Any]:
        journal = Journal("test", clock.now())
        ids = {
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
        tokens = {n: create_api_token(session, journal, n, i)[1] for n, i in ids.items()}
        tokens["system"] = create_api_token(session, journal, "system")[1]
        journal.flush(session)
        return {"ids": ids, "tokens": tokens}

    data = await db.write(people)
    settings = Settings(database_url=database_url, media_dir=str(tmp_path / "media"))
    client = await aiohttp_client(create_app(settings, clock=clock))
    system = {"Authorization": f"Bearer {data['tokens']['system']}"}
    n = 0
    for person in CLIENTS:
        for body in person["texts"]:
            n += 1
            response = await client.post(
                "/api/v1/inbound",
                json={"external_id": f"m{n}", "sender": person["sender"], "text": body},
                headers=system,
            )
            assert response.status in (200, 201), await response.text()
            conversation_id = (await response.json())["conversation_id"]
        await db.write(partial(_hand_to, conversation_id, data["ids"][person["owner"]]))
    return client, data


def _hand_to(conversation_id: int, manager_id: int, session: Session) -> None:
    """The conversation, its client and their deal are the manager's (whatever routing
    chose)."""
    conversation = session.get(Conversation, conversation_id)
    assert conversation is not None
    conversation.assignee_id = manager_id
    session.execute(
        update(Contact).where(Contact.id == conversation.contact_id).values(owner_id=manager_id)
    )
    session.execute(
        update(Deal).where(Deal.contact_id == conversation.contact_id).values(owner_id=manager_id)
    )


async def _search(
    client: Client, data: dict[str, Any], who: str, q: str, status: int = 200
) -> dict[str, Any]:
    response = await client.get(
        "/api/v1/search",
        params={"q": q},
        headers={"Authorization": f"Bearer {data['tokens'][who]}"},
    )
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def _names(found: dict[str, Any]) -> list[str]:
    return [c["name"] for c in found["contacts"]]


@pytest.mark.parametrize(
    ("q", "matched", "context"),
    [
        ("8 (916) 123-45-67", "phone", "+79161234567"),
        ("+79161234567", "phone", "+79161234567"),
        ("916 123", "phone", "+79161234567"),
        ("4567", "phone", "+79161234567"),
        ("IVAN.PETROV@example.com", "email", "ivan.petrov@example.com"),
        ("ivan.pet", "email", "ivan.petrov@example.com"),
    ],
)
async def test_a_contact_by_any_identity_in_any_format(
    hub: tuple[Client, dict[str, Any]], q: str, matched: str, context: str
) -> None:
    client, data = hub
    found = await _search(client, data, "head", q)
    assert found["contacts"][0]["name"] == "Иван Петров"
    assert found["contacts"][0]["matched"] == matched
    assert found["contacts"][0]["context"] == context
    assert found["contacts"][0]["link"] == f"/contacts/{found['contacts'][0]['id']}"


@pytest.mark.parametrize(
    ("q", "name"),
    [
        ("иван", "Иван Петров"),
        ("ИВА пет", "Иван Петров"),
        ("елкин", "Олег Ёлкин"),
        ("ёлкин", "Олег Ёлкин"),
        ("рога", "Олег Ёлкин"),
        ("jose", "José Müller"),
        ("MULLER", "José Müller"),
    ],
)
async def test_a_contact_by_name_or_company_case_and_accent_insensitive(
    hub: tuple[Client, dict[str, Any]], q: str, name: str
) -> None:
    client, data = hub
    assert _names(await _search(client, data, "head", q)) == [name]


async def test_messages_by_stem_newest_first_with_context_and_link(
    hub: tuple[Client, dict[str, Any]],
) -> None:
    client, data = hub
    found = await _search(client, data, "head", "кластер")
    assert [m["contact_name"] for m in found["messages"]] == ["Иван Петров"]
    hit = found["messages"][0]
    assert hit["link"] == f"/inbox?c={hit['conversation_id']}"
    offset, length = hit["highlights"][0]
    assert hit["context"][offset : offset + length] == "кластеры"
    # an English word by its stem, and every word must match
    found = await _search(client, data, "head", "cluster managed")
    assert [m["contact_name"] for m in found["messages"]] == ["José Müller"]
    assert (await _search(client, data, "head", "cluster цена"))["messages"] == []
    found = await _search(client, data, "head", "кластерами")
    assert [m["contact_name"] for m in found["messages"]] == ["Иван Петров"]


async def test_a_manager_finds_only_what_they_may_open(
    hub: tuple[Client, dict[str, Any]],
) -> None:
    client, data = hub
    assert _names(await _search(client, data, "bob", "иван")) == []
    assert (await _search(client, data, "bob", "кластеры"))["messages"] == []
    assert _names(await _search(client, data, "bob", "+79161234567")) == []
    assert _names(await _search(client, data, "ann", "jose")) == []
    mine = await _search(client, data, "bob", "clusters")
    assert [m["contact_name"] for m in mine["messages"]] == ["José Müller"]
    assert _names(await _search(client, data, "ann", "иван")) == ["Иван Петров"]


async def test_an_edit_and_a_rename_are_found_at_once(
    hub: tuple[Client, dict[str, Any]], db: Database
) -> None:
    client, data = hub

    def edit(session: Session) -> None:
        session.execute(
            update(Message)
            .where(Message.text == "Хочу пробный период")
            .values(text="Передумал: нужен выделенный сервер")
        )
        session.execute(
            update(Contact).where(Contact.name == "Олег Ёлкин").values(name="Олег Сосновский")
        )

    await db.write(edit)
    assert (await _search(client, data, "head", "пробный"))["messages"] == []
    found = await _search(client, data, "head", "сервер")
    assert [m["contact_name"] for m in found["messages"]] == ["Олег Сосновский"]
    assert _names(await _search(client, data, "head", "елкин")) == []
    assert _names(await _search(client, data, "head", "сосновск")) == ["Олег Сосновский"]


async def test_a_merged_contact_is_not_found_twice(
    hub: tuple[Client, dict[str, Any]], db: Database
) -> None:
    client, data = hub
    ids = await db.read(
        lambda s: list(s.scalars(select(Contact.id).where(Contact.name.like("%Петров%"))))
    )
    assert len(ids) == 1
    found = await _search(client, data, "head", "петров 916")
    assert _names(found) == []  # both words must match one contact's name


@pytest.mark.parametrize("q", ["", "   ", "!!!", "x" * 201])
async def test_a_text_with_no_words_is_refused(hub: tuple[Client, dict[str, Any]], q: str) -> None:
    client, data = hub
    found = await _search(client, data, "head", q, status=400)
    assert found["error"] == "invalid_query"


async def test_query_syntax_is_only_text(hub: tuple[Client, dict[str, Any]]) -> None:
    client, data = hub
    for q in ['"иван', "иван OR олег", "NEAR(иван олег)", "иван & !олег", "иван:*", "-иван"]:
        await _search(client, data, "head", q)  # 200 each: nothing reaches the engine's syntax


async def test_a_telegram_client_by_the_username_they_last_wrote_under(
    hub: tuple[Client, dict[str, Any]], db: Database
) -> None:
    client, data = hub
    service = IngestService(db, ManualClock(), IngestPolicy(first_task_due=timedelta(minutes=15)))
    first = inbound(telegram("5550001"), channel="telegram", account="bot", name="Пётр")
    await service.ingest(replace(first, handle="Petr_Cloud"))
    found = await _search(client, data, "head", "@petr_cloud")
    assert [(c["name"], c["matched"], c["context"]) for c in found["contacts"]] == [
        ("Пётр", "telegram", "5550001")
    ]
    # a new username replaces the old one; the old one finds nobody
    again = inbound(telegram("5550001"), channel="telegram", account="bot", minutes=1)
    await service.ingest(replace(again, handle="petr_new"))
    assert _names(await _search(client, data, "head", "@Petr_New")) == ["Пётр"]
    assert _names(await _search(client, data, "head", "@petr_cloud")) == []
    # ё as е; a word's beginning finds Петров too, the newest contact first
    assert _names(await _search(client, data, "head", "петр")) == ["Пётр", "Иван Петров"]


async def test_windows_of_the_newest_ids_find_the_same_as_one_search(
    hub: tuple[Client, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL searches the newest ids first (``PG_WINDOWS``): with a window of one
    message the older matches are still found, newest first, none twice."""
    client, data = hub
    system = {"Authorization": f"Bearer {data['tokens']['system']}"}
    sender = {"name": "Анна Тарифова", "identities": [{"kind": "email", "value": "a@t.test"}]}
    for n, body in enumerate(["Какие тарифы?", "Тариф для кластера", "Спасибо", "Ок"]):
        response = await client.post(
            "/api/v1/inbound",
            json={"external_id": f"t{n}", "sender": sender, "text": body},
            headers=system,
        )
        assert response.status in (200, 201), await response.text()
    whole = await _search(client, data, "head", "тарифы")
    assert [m["context"] for m in whole["messages"]] == ["Тариф для кластера", "Какие тарифы?"]
    monkeypatch.setattr(search_module, "PG_WINDOWS", (1,))
    assert await _search(client, data, "head", "тарифы") == whole
    found = await _search(client, data, "head", "кластеры")
    assert [m["contact_name"] for m in found["messages"]] == ["Анна Тарифова", "Иван Петров"]
