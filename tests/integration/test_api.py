"""The API channel and read endpoints, through a real aiohttp server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from crm_core.clock import ManualClock
from crm_core.db import Database
from crm_core.models import AuditEntry, Contact, Message
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, api_token, count_rows, event_names

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def api(
    database_url: str, db: Database, clock: ManualClock, aiohttp_client: ClientFactory
) -> tuple[TestClient[Any, Any], dict[str, str]]:
    token = await api_token(db)
    await add_managers(db, 2)
    settings = Settings(database_url=database_url, max_body_bytes=64 * 1024)
    client = await aiohttp_client(create_app(settings, clock=clock))
    return client, {"Authorization": f"Bearer {token}"}


def _body(external_id: str = "m-1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "channel": "api",
        "channel_account": "website",
        "external_id": external_id,
        "sender": {
            "name": "Иван Петров",
            "identities": [
                {"kind": "phone", "value": "8 (916) 123-45-67"},
                {"kind": "email", "value": "Ivan@Example.com"},
            ],
        },
        "text": "Сколько стоит кластер PostgreSQL?",
        "attribution": {"utm_source": "yandex", "utm_medium": "cpc", "yclid": "42"},
    }
    body.update(extra)
    return body


async def test_post_then_repeat(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    created = await client.post("/api/v1/inbound", json=_body(), headers=auth)
    assert created.status == 201
    first = await created.json()
    assert first["contact_created"]
    assert first["deal_created"]
    assert first["assignee_id"] is not None
    repeat = await client.post("/api/v1/inbound", json=_body(), headers=auth)
    assert repeat.status == 200
    again = await repeat.json()
    assert again["duplicate"] is True
    assert again["message_id"] == first["message_id"]
    assert await count_rows(db, Message) == 1


async def test_ten_concurrent_identical_posts(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    responses = await asyncio.gather(
        *(client.post("/api/v1/inbound", json=_body("same"), headers=auth) for _ in range(10))
    )
    assert sorted(r.status for r in responses) == [200] * 9 + [201]
    assert await count_rows(db, Message) == 1
    assert await count_rows(db, Contact) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"sender": {"identities": [{"kind": "phone", "value": "1"}]}, "external_id": "x"},
            "sender.identities[0].value",
        ),
        ({"sender": {"identities": []}, "external_id": "x"}, "sender.identities"),
        (
            {"sender": {"identities": [{"kind": "fax", "value": "1"}]}, "external_id": "x"},
            "sender.identities[0].kind",
        ),
        ({"sender": {"identities": [{"kind": "email", "value": "a@b.c"}]}}, "external_id"),
        (
            {
                "sender": {"identities": [{"kind": "email", "value": "a@b.c"}]},
                "external_id": "x",
                "colour": "red",
            },
            "colour",
        ),
        (
            {
                "sender": {"identities": [{"kind": "email", "value": "a@b.c"}]},
                "external_id": "x",
                "occurred_at": "2026-01-01T10:00:00",
            },
            "occurred_at",
        ),
        (
            {
                "sender": {"identities": [{"kind": "email", "value": "a@b.c"}]},
                "external_id": "x",
                "funnel": "nope",
            },
            "funnel",
        ),
    ],
)
async def test_invalid_bodies_name_the_field_and_write_nothing(
    api: tuple[TestClient[Any, Any], dict[str, str]],
    db: Database,
    body: dict[str, Any],
    field: str,
) -> None:
    client, auth = api
    audit_before = await count_rows(db, AuditEntry)
    response = await client.post("/api/v1/inbound", json=body, headers=auth)
    assert response.status == 400
    error = await response.json()
    assert error["error"] == "invalid_body"
    assert field in {e["field"] for e in error["errors"]}
    assert field in error["message"]
    assert await count_rows(db, Contact) == 0
    assert await count_rows(db, Message) == 0
    assert await count_rows(db, AuditEntry) == audit_before


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "error"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_body"),
        (b"external_id=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (b"{" + b" " * (70 * 1024) + b"}", "application/json", 413, "body_too_large"),
    ],
)
async def test_malformed_requests_get_json_errors(
    api: tuple[TestClient[Any, Any], dict[str, str]],
    db: Database,
    raw: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    client, auth = api
    response = await client.post(
        "/api/v1/inbound", data=raw, headers={**auth, "Content-Type": content_type}
    )
    assert response.status == status
    assert (await response.json())["error"] == error
    assert await count_rows(db, Message) == 0


async def test_chunked_oversized_body_is_refused(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = await client.post(
        "/api/v1/inbound", data=chunks(), headers={**auth, "Content-Type": "application/json"}
    )
    assert response.status == 413
    assert (await response.json())["error"] == "body_too_large"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc", "Bearer "])
async def test_without_a_valid_token_401(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database, header: str | None
) -> None:
    client, _auth = api
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("POST", "/api/v1/inbound"), ("GET", "/api/v1/contacts")):
        response = await client.request(method, path, json=_body(), headers=headers)
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    assert await count_rows(db, Message) == 0


async def test_reads_with_pagination(api: tuple[TestClient[Any, Any], dict[str, str]]) -> None:
    client, auth = api
    for n in range(5):
        body = _body(
            f"p-{n}", sender={"identities": [{"kind": "phone", "value": f"+7 916 000 00 3{n}"}]}
        )
        assert (await client.post("/api/v1/inbound", json=body, headers=auth)).status == 201
    seen: list[int] = []
    after = 0
    while True:
        page = await (
            await client.get(f"/api/v1/contacts?limit=2&after={after}", headers=auth)
        ).json()
        seen += [c["id"] for c in page["items"]]
        assert all(c["identities"] for c in page["items"])
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert len(seen) == 5 == len(set(seen))

    contact = await (await client.get(f"/api/v1/contacts/{seen[0]}", headers=auth)).json()
    assert contact["first_touch"]["utm_source"] == "yandex"
    conversations = await (
        await client.get(f"/api/v1/conversations?contact_id={seen[0]}", headers=auth)
    ).json()
    conversation_id = conversations["items"][0]["id"]
    conversation = await (
        await client.get(f"/api/v1/conversations/{conversation_id}", headers=auth)
    ).json()
    assert conversation["channel_account"] == "website"
    assert conversation["messages"]["items"][0]["text"].startswith("Сколько")
    deals = await (
        await client.get("/api/v1/deals?funnel=consultation&stage=new", headers=auth)
    ).json()
    assert len(deals["items"]) == 5
    deal = await (await client.get(f"/api/v1/deals/{deals['items'][0]['id']}", headers=auth)).json()
    assert len(deal["stage_history"]) == 1
    tasks = await (await client.get("/api/v1/tasks?status=open", headers=auth)).json()
    assert len(tasks["items"]) == 5
    funnels = await (await client.get("/api/v1/funnels", headers=auth)).json()
    assert [f["code"] for f in funnels["items"]] == [
        "consultation",
        "webinar",
        "marathon",
        "conference",
        "cascade",
        "landing",
    ]
    assert [s["code"] for s in funnels["items"][0]["stages"]][-2:] == ["won", "lost"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/v1/contacts/999", 404),
        ("/api/v1/contacts/abc", 400),
        ("/api/v1/deals/0", 400),
        ("/api/v1/contacts?limit=0", 400),
        ("/api/v1/contacts?limit=x", 400),
        ("/api/v1/tasks?status=lost", 400),
        ("/api/v1/nowhere", 404),
    ],
)
async def test_bad_reads_are_json_4xx(
    api: tuple[TestClient[Any, Any], dict[str, str]], path: str, status: int
) -> None:
    client, auth = api
    response = await client.get(path, headers=auth)
    assert response.status == status
    assert "message" in await response.json()


async def test_merge_undo_through_the_api(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    a = _body("a", sender={"identities": [{"kind": "phone", "value": "+79161112233"}]})
    b = _body(
        "b",
        channel="telegram",
        channel_account="bot",
        sender={"identities": [{"kind": "telegram", "value": "77"}]},
    )
    both = _body(
        "c",
        channel="telegram",
        channel_account="bot",
        sender={
            "identities": [
                {"kind": "telegram", "value": "77"},
                {"kind": "phone", "value": "8 916 111-22-33"},
            ]
        },
    )
    for body in (a, b):
        assert (await client.post("/api/v1/inbound", json=body, headers=auth)).status == 201
    merged = await (await client.post("/api/v1/inbound", json=both, headers=auth)).json()
    assert len(merged["merged_contact_ids"]) == 1
    contact = await (
        await client.get(f"/api/v1/contacts/{merged['contact_id']}", headers=auth)
    ).json()
    merge_id = contact["merges"][0]["id"]
    undone = await client.post(f"/api/v1/merges/{merge_id}/undo", headers=auth)
    assert undone.status == 200
    assert (await undone.json())["undone_at"] is not None
    twice = await client.post(f"/api/v1/merges/{merge_id}/undo", headers=auth)
    assert twice.status == 409
    missing = await client.post("/api/v1/merges/12345/undo", headers=auth)
    assert missing.status == 404
    separated = await (await client.get("/api/v1/contacts", headers=auth)).json()
    assert len(separated["items"]) == 2
    assert "contact.merge_undone" in await event_names(db)


async def test_openapi_document_and_health(
    api: tuple[TestClient[Any, Any], dict[str, str]],
) -> None:
    client, _auth = api
    document = await (await client.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert "/api/v1/inbound" in document["paths"]
    assert "InboundBody" in document["components"]["schemas"]
    json.dumps(document)
    health = await client.get("/healthz")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"


async def test_deal_moves_through_its_funnel(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    created = await (await client.post("/api/v1/inbound", json=_body(), headers=auth)).json()
    path = f"/api/v1/deals/{created['deal_id']}/stage"
    moved = await client.post(
        path, json={"stage": "proposal_sent", "amount": "150000.00"}, headers=auth
    )
    assert moved.status == 200
    deal = await moved.json()
    assert deal["is_open"] is True
    assert deal["amount"] == "150000.00"
    assert len(deal["stage_history"]) == 2
    refused = await client.post(path, json={"stage": "lost"}, headers=auth)
    assert refused.status == 409
    assert "lost_reason" in (await refused.json())["message"]
    assert (await client.post(path, json={"stage": "nowhere"}, headers=auth)).status == 409
    assert (await client.post(path, json={"stage": 5}, headers=auth)).status == 400
    missing = await client.post("/api/v1/deals/999/stage", json={"stage": "won"}, headers=auth)
    assert missing.status == 404
    lost = await (
        await client.post(
            path, json={"stage": "lost", "lost_reason": "Too expensive"}, headers=auth
        )
    ).json()
    assert lost["is_open"] is False
    assert lost["closed_at"] is not None
    assert lost["lost_reason"] == "Too expensive"
    reopened = await (
        await client.post(path, json={"stage": "needs_gathered"}, headers=auth)
    ).json()
    assert (reopened["is_open"], reopened["closed_at"], reopened["lost_reason"]) == (
        True,
        None,
        None,
    )
    won = await (await client.post(path, json={"stage": "won"}, headers=auth)).json()
    assert won["is_open"] is False
    names = await event_names(db)
    assert names.count("deal.stage_changed") == 4
    assert names.count("deal.lost") == 1
    assert names.count("deal.won") == 1


async def test_reply_through_the_api_is_queued(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    body = _body(
        channel="telegram",
        channel_account="bot",
        sender={"identities": [{"kind": "telegram", "value": "99"}]},
    )
    created = await (await client.post("/api/v1/inbound", json=body, headers=auth)).json()
    path = f"/api/v1/conversations/{created['conversation_id']}/messages"
    queued = await client.post(path, json={"text": "Здравствуйте!"}, headers=auth)
    assert queued.status == 202
    message_id = (await queued.json())["message_id"]
    stored = await db.read(lambda s: s.get(Message, message_id))
    assert stored is not None
    assert stored.direction == "out"
    assert (await client.post(path, json={"text": ""}, headers=auth)).status == 400
    missing = await client.post(
        "/api/v1/conversations/999/messages", json={"text": "x"}, headers=auth
    )
    assert missing.status == 404
    plain = await (await client.post("/api/v1/inbound", json=_body("api-1"), headers=auth)).json()
    refused = await client.post(
        f"/api/v1/conversations/{plain['conversation_id']}/messages",
        json={"text": "x"},
        headers=auth,
    )
    assert refused.status == 409


async def test_routing_rules_choose_funnel_tasks_and_tags(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api
    body = _body("web-1", attribution={"utm_source": "vk", "utm_campaign": "webinar_oct"})
    created = await (await client.post("/api/v1/inbound", json=body, headers=auth)).json()
    deal = await (await client.get(f"/api/v1/deals/{created['deal_id']}", headers=auth)).json()
    assert deal["tags"] == ["webinar"]
    assert "webinar registrations" in deal["routing_reason"]
    funnels = await (await client.get("/api/v1/funnels", headers=auth)).json()
    webinar = next(f for f in funnels["items"] if f["code"] == "webinar")
    assert deal["funnel_id"] == webinar["id"]
    tasks = await (
        await client.get(f"/api/v1/tasks?deal_id={created['deal_id']}", headers=auth)
    ).json()
    assert [t["title"] for t in tasks["items"]] == ["Confirm the webinar registration"]
    conversation = await (
        await client.get(f"/api/v1/conversations/{created['conversation_id']}", headers=auth)
    ).json()
    assert conversation["routing_reason"] == deal["routing_reason"]


async def test_tasks_are_a_working_tool_with_history(
    api: tuple[TestClient[Any, Any], dict[str, str]],
) -> None:
    client, auth = api
    created = await (await client.post("/api/v1/inbound", json=_body(), headers=auth)).json()
    made = await client.post(
        "/api/v1/tasks",
        headers=auth,
        json={
            "kind": "meeting",
            "title": "Demo of the managed cluster",
            "assignee_id": 1,
            "due_at": "2026-03-03T10:00:00+03:00",
            "deal_id": created["deal_id"],
        },
    )
    assert made.status == 201
    task = await made.json()
    path = f"/api/v1/tasks/{task['id']}"
    moved = await (
        await client.patch(
            path, headers=auth, json={"assignee_id": 2, "due_at": "2026-03-04T10:00:00+03:00"}
        )
    ).json()
    assert moved["assignee_id"] == 2
    done = await (await client.post(f"{path}/complete", headers=auth)).json()
    assert done["status"] == "done"
    assert done["done_at"] is not None
    again = await (await client.post(f"{path}/reopen", headers=auth)).json()
    assert (again["status"], again["done_at"]) == ("open", None)
    history = (await (await client.get(path, headers=auth)).json())["history"]
    assert [h["action"] for h in history] == [
        "task.created",
        "task.reassigned",
        "task.completed",
        "task.reopened",
    ]
    assert history[1]["changes"]["assignee_id"] == [1, 2]
    nowhere = await client.post("/api/v1/tasks", headers=auth, json={"title": "Orphan"})
    assert nowhere.status == 409
    ghost = await client.patch(path, headers=auth, json={"assignee_id": 999})
    assert ghost.status == 409
    assert (await client.post("/api/v1/tasks/999/complete", headers=auth)).status == 404
    naive = await client.patch(path, headers=auth, json={"due_at": "2026-03-04T10:00:00"})
    assert naive.status == 400


async def test_routing_is_edited_through_the_api_all_or_nothing(
    api: tuple[TestClient[Any, Any], dict[str, str]],
    database_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
) -> None:
    client, auth = api
    current = await (await client.get("/api/v1/routing", headers=auth)).json()
    assert current["source"].startswith("file:")
    document = current["document"]
    document["rules"].insert(
        0, {"name": "vip", "team": "Sales", "funnel": "conference", "when": {"keywords": ["vip"]}}
    )
    broken = {**document, "rules": [*document["rules"], {"name": "x", "team": "Nobody"}]}
    refused = await client.put("/api/v1/routing", json=broken, headers=auth)
    assert refused.status == 400
    error = await refused.json()
    assert "Nobody" in error["message"]
    assert error["errors"][0]["field"].endswith(".team")
    assert (await client.put("/api/v1/routing", data=b"{", headers=auth)).status == 400
    vip = _body("vip-1", text="I am a VIP client")
    created = await (await client.post("/api/v1/inbound", json=vip, headers=auth)).json()
    deal = await (await client.get(f"/api/v1/deals/{created['deal_id']}", headers=auth)).json()
    assert "vip" not in deal["routing_reason"]  # the refused edit changed nothing

    accepted = await client.put("/api/v1/routing", json=document, headers=auth)
    assert accepted.status == 200
    other = _body(
        "vip-2",
        text="VIP again",
        sender={"identities": [{"kind": "phone", "value": "+7 916 000 00 77"}]},
    )
    created = await (await client.post("/api/v1/inbound", json=other, headers=auth)).json()
    deal = await (await client.get(f"/api/v1/deals/{created['deal_id']}", headers=auth)).json()
    assert "'vip'" in deal["routing_reason"]

    # A restarted hub keeps the edited routing.
    restarted = await aiohttp_client(create_app(Settings(database_url=database_url), clock=clock))
    kept = await (await restarted.get("/api/v1/routing", headers=auth)).json()
    assert kept["source"] == "api"
    assert kept["document"]["rules"][0]["name"] == "vip"


async def test_offered_to_all_the_first_to_take_it_owns_it(
    api: tuple[TestClient[Any, Any], dict[str, str]], db: Database
) -> None:
    client, auth = api

    first, second = [await api_token(db, f"m{m}", manager_id=m) for m in (1, 2)]
    everyone = {
        "teams": {"Sales": {"mode": "to_all", "all_managers": True}},
        "rules": [{"name": "default", "team": "Sales"}],
    }
    assert (await client.put("/api/v1/routing", json=everyone, headers=auth)).status == 200
    created = await (await client.post("/api/v1/inbound", json=_body(), headers=auth)).json()
    assert created["assignee_id"] is None
    path = f"/api/v1/conversations/{created['conversation_id']}/take"
    results = await asyncio.gather(
        client.post(path, headers={"Authorization": f"Bearer {first}"}),
        client.post(path, headers={"Authorization": f"Bearer {second}"}),
    )
    # The loser no longer sees it (it is the winner's now): 404, as for anyone's.
    assert sorted(r.status for r in results) == [200, 404]
    winner = next(r for r in results if r.status == 200)
    owner = (await winner.json())["assignee_id"]
    conversation = await (
        await client.get(f"/api/v1/conversations/{created['conversation_id']}", headers=auth)
    ).json()
    assert conversation["assignee_id"] == owner
    assert (await client.post(path, headers=auth)).status == 403  # not a manager's token
