"""A deal carries money: PATCH /api/v1/deals/{id} sets its title, amount, currency, owner
and product, within the viewer's scope, each change in its history and announced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from crm_core.db import Database
from crm_core.journal import EVENTS_TOPIC, unpacked
from crm_core.models import OutboxMessage
from tests.integration.conftest import World


async def test_a_manager_sets_the_money_of_their_deal(world: World, db: Database) -> None:
    deal_id = world.deals["ann"]
    response = await world.client.patch(
        f"/api/v1/deals/{deal_id}",
        json={"amount": "125000.50", "currency": "USD", "product": "pg-cluster", "title": "PG x3"},
        headers=world.auth["ann"],
    )
    assert response.status == 200, await response.text()
    deal = await response.json()
    assert deal["amount"] == "125000.50"
    assert deal["currency"] == "USD"
    assert deal["product"] == "pg-cluster"
    assert deal["title"] == "PG x3"
    (change,) = [h for h in deal["history"] if h["action"] == "deal.updated"]
    fields = {c["field"]: (c["old"], c["new"]) for c in change["details"]["changes"]}
    assert fields["amount"] == (None, "125000.50")
    assert fields["product"] == (None, "pg-cluster")
    assert change["actor"] == "api_token:1"  # Ann's token: who did it

    def events(session: object) -> list[Mapping[str, Any]]:
        rows = session.scalars(  # type: ignore[attr-defined]
            select(OutboxMessage.payload).where(OutboxMessage.topic == EVENTS_TOPIC)
        )
        return [p for row in rows for _k, p in unpacked(row) if p["event"] == "deal.updated"]

    (event,) = await db.read(events)
    assert event["deal"]["product"] == "pg-cluster"

    # the same values again change nothing and add no history
    again = await world.client.patch(
        f"/api/v1/deals/{deal_id}", json={"amount": "125000.50"}, headers=world.auth["ann"]
    )
    assert len([h for h in (await again.json())["history"] if h["action"] == "deal.updated"]) == 1


async def test_bad_values_and_other_peoples_deals_are_refused(world: World) -> None:
    ann_deal = world.deals["ann"]
    cases = [
        ({"product": "oracle"}, "product"),
        ({"currency": "rub"}, "currency"),
        ({"amount": "-1"}, "amount"),
        ({"title": None}, "title"),
        ({"stage": "won"}, "stage"),
    ]
    for body, field in cases:
        response = await world.client.patch(
            f"/api/v1/deals/{ann_deal}", json=body, headers=world.auth["ann"]
        )
        assert response.status == 400, (body, await response.text())
        errors = (await response.json()).get("errors") or []
        assert any(field in str(e.get("field")) for e in errors), (body, errors)
    # a manager may not hand their deal to someone else
    handing = await world.client.patch(
        f"/api/v1/deals/{ann_deal}", json={"owner_id": world.ids["bob"]}, headers=world.auth["ann"]
    )
    assert handing.status == 403
    products = await world.client.get("/api/v1/products", headers=world.auth["ann"])
    assert [p["code"] for p in (await products.json())["items"]] == ["kafka", "pg-cluster"]
    theirs = await world.client.patch(
        f"/api/v1/deals/{ann_deal}", json={"amount": "1"}, headers=world.auth["bob"]
    )
    assert theirs.status == 404
    nobody = await world.client.patch(
        f"/api/v1/deals/{ann_deal}", json={"owner_id": 10**9}, headers=world.auth["head"]
    )
    assert nobody.status == 400
    # the head of sales may hand the deal to Bob
    handed = await world.client.patch(
        f"/api/v1/deals/{ann_deal}", json={"owner_id": world.ids["bob"]}, headers=world.auth["head"]
    )
    assert handed.status == 200
    assert (await handed.json())["owner_id"] == world.ids["bob"]
