"""Managers changed by the admin, again and again; passwords changed and reset."""

from __future__ import annotations

from typing import Any

from aiohttp import ClientSession, CookieJar

from crm_core.clock import ManualClock
from crm_core.contracts import IdentityRef
from crm_core.db import Database
from crm_core.enums import IdentityKind
from hub.keys import INGEST
from tests.factories import emitted
from tests.integration.conftest import World


def _browser(world: World) -> ClientSession:
    """Another browser (its own cookie jar) on the same hub; close it after use."""
    return ClientSession(str(world.client.make_url("/")), cookie_jar=CookieJar(unsafe=True))


async def _log_in(browser: ClientSession, email: str, password: str) -> str:
    login = await browser.post("/api/v1/session", json={"email": email, "password": password})
    assert login.status == 200, await login.text()
    return str((await login.json())["csrf_token"])


async def test_a_manager_changed_many_times_answers_each_change(world: World, db: Database) -> None:
    client, admin, bob = world.client, world.auth["admin"], world.ids["bob"]
    changes: list[dict[str, Any]] = [
        {"capacity": 10},
        {"capacity": 10},
        {"active": False},
        {"active": True},
        {"name": "Boris"},
        {"capacity": 11, "active": False},
        {"active": True},
    ]
    async with _browser(world) as browser:
        await _log_in(browser, "bob@example.test", "bob-password")
        for change in changes:
            response = await client.patch(f"/api/v1/managers/{bob}", json=change, headers=admin)
            assert response.status == 200, (change, await response.text())
            body = await response.json()
            assert body | change == body
        # Deactivation ended the session: being active again does not bring it back.
        assert (await browser.get("/api/v1/me")).status == 401
    events = [e for e in await emitted(db, "manager.changed") if e["manager_id"] == bob]
    assert [{k: e[k] for k in change} for e, change in zip(events, changes, strict=True)] == changes


async def test_an_admin_password_reset_ends_every_session_and_token_at_once(
    world: World,
) -> None:
    client, ann = world.client, world.ids["ann"]
    token = world.auth["ann"]
    assert (await client.get("/api/v1/me", headers=token)).status == 200  # now cached
    async with _browser(world) as first, _browser(world) as second:
        for browser in (first, second):
            await _log_in(browser, "ann@example.test", "ann-password")
            assert (await browser.get("/api/v1/me")).status == 200
        short = await client.patch(
            f"/api/v1/managers/{ann}", json={"password": "short"}, headers=world.auth["admin"]
        )
        assert short.status == 400
        assert "password" in (await short.json())["message"]
        reset = await client.patch(
            f"/api/v1/managers/{ann}",
            json={"password": " a new long secret "},
            headers=world.auth["admin"],
        )
        assert reset.status == 200
        assert "password" not in await reset.text()
        for browser in (first, second):
            assert (await browser.get("/api/v1/me")).status == 401
        assert (await client.get("/api/v1/me", headers=token)).status == 401
        old = {"email": "ann@example.test", "password": "ann-password"}
        assert (await first.post("/api/v1/session", json=old)).status == 401
        await _log_in(first, "ann@example.test", " a new long secret ")  # spaces and all


async def test_a_manager_changes_their_own_password(world: World) -> None:
    client, token = world.client, world.auth["ann"]
    assert (await client.get("/api/v1/me", headers=token)).status == 200  # now cached
    async with _browser(world) as mine, _browser(world) as other:
        csrf = await _log_in(mine, "ann@example.test", "ann-password")
        await _log_in(other, "ann@example.test", "ann-password")
        headers = {"X-CSRF-Token": csrf}
        for body, field in (
            ({"password": "a new long secret"}, "current_password"),
            ({"password": "short", "current_password": "ann-password"}, "password"),
            ({}, "password"),
        ):
            refused = await mine.patch("/api/v1/me", json=body, headers=headers)
            assert refused.status == 400, body
            assert field in (await refused.json())["message"], body
        wrong = {"password": "a new long secret", "current_password": "not-it"}
        refused = await mine.patch("/api/v1/me", json=wrong, headers=headers)
        assert refused.status == 403
        assert (await refused.json())["error"] == "wrong_password"
        right = {**wrong, "current_password": "ann-password"}
        changed = await mine.patch("/api/v1/me", json=right, headers=headers)
        assert changed.status == 200, await changed.text()
        assert (await mine.get("/api/v1/me")).status == 200  # the session it was changed in
        assert (await other.get("/api/v1/me")).status == 401
        assert (await client.get("/api/v1/me", headers=token)).status == 401
        await _log_in(other, "ann@example.test", "a new long secret")


async def test_guessing_the_current_password_is_braked(world: World) -> None:
    async with _browser(world) as browser:
        headers = {"X-CSRF-Token": await _log_in(browser, "ann@example.test", "ann-password")}
        guess = {"password": "a new long secret", "current_password": "guess"}
        for _ in range(5):
            response = await browser.patch("/api/v1/me", json=guess, headers=headers)
            assert response.status == 403
        right = {**guess, "current_password": "ann-password"}
        braked = await browser.patch("/api/v1/me", json=right, headers=headers)
        assert braked.status == 429
        assert "Retry-After" in braked.headers


async def test_an_unreachable_identity_shows_on_the_contact_until_a_manager_clears_it(
    world: World, db: Database, clock: ManualClock
) -> None:
    client, ann, integration = world.client, world.auth["ann"], world.auth["integration"]
    contact = world.contacts["ann"]
    mail = {
        "channel": "email",
        "channel_account": "sales",
        "external_id": "mail-1",
        "sender": {
            "name": "Client 1",
            "identities": [
                {"kind": "phone", "value": "+79160000001"},
                {"kind": "email", "value": "client1@example.test"},
            ],
        },
        "text": "The same client, by mail",
    }
    stored = await client.post("/api/v1/inbound", json=mail, headers=integration)
    assert stored.status == 201, await stored.text()
    assert (await stored.json())["contact_id"] == contact
    app = client.app
    assert app is not None
    bounced = IdentityRef(IdentityKind.EMAIL, "client1@example.test")
    assert await app[INGEST].mark_unreachable(bounced, "550 5.1.1 mailbox unknown")

    card = await (await client.get(f"/api/v1/contacts/{contact}", headers=ann)).json()
    flags = {i["kind"]: (i["unreachable_at"], i["unreachable_reason"]) for i in card["identities"]}
    assert flags == {
        "phone": (None, None),
        "email": (clock.now().isoformat(), "550 5.1.1 mailbox unknown"),
    }
    # The reply box no longer offers the mailbox.
    sales = {"channel": "email", "channel_account": "sales"}
    assert sales not in card["reachable_accounts"]
    assert sales in card["unreachable_accounts"]
    listed = await (await client.get("/api/v1/contacts", headers=ann)).json()
    [row] = [c for c in listed["items"] if c["id"] == contact]
    assert {i["kind"]: i["unreachable_at"] for i in row["identities"]}["email"] is not None

    email_id = next(i["id"] for i in card["identities"] if i["kind"] == "email")
    path = f"/api/v1/contacts/{contact}/identities/{email_id}/unreachable"
    # A colleague's client is as if it did not exist: its mark stays.
    bobs = world.contacts["bob"]
    assert await app[INGEST].mark_unreachable(IdentityRef(IdentityKind.PHONE, "+79160000002"), "x")
    bob_card = await (await client.get(f"/api/v1/contacts/{bobs}", headers=integration)).json()
    bob_phone = bob_card["identities"][0]["id"]
    colleague = f"/api/v1/contacts/{bobs}/identities/{bob_phone}/unreachable"
    assert (await client.delete(colleague, headers=ann)).status == 404
    bob_card = await (await client.get(f"/api/v1/contacts/{bobs}", headers=integration)).json()
    assert bob_card["identities"][0]["unreachable_reason"] == "x"
    elsewhere = f"/api/v1/contacts/{contact}/identities/{bob_phone}/unreachable"
    assert (await client.delete(elsewhere, headers=integration)).status == 404
    missing = f"/api/v1/contacts/{contact}/identities/{email_id + 1000}/unreachable"
    assert (await client.delete(missing, headers=ann)).status == 404

    cleared = await client.delete(path, headers=ann)
    assert cleared.status == 200, await cleared.text()
    assert await cleared.json() == {
        "id": email_id,
        "kind": "email",
        "value": "client1@example.test",
        "unreachable_at": None,
        "unreachable_reason": None,
    }
    card = await (await client.get(f"/api/v1/contacts/{contact}", headers=ann)).json()
    assert all(i["unreachable_at"] is None for i in card["identities"])
    assert sales in card["reachable_accounts"]
    assert card["unreachable_accounts"] == []
    events = await emitted(db, "identity.unreachable_cleared")
    assert [(e["identity_id"], e["reason"]) for e in events] == [
        (email_id, "550 5.1.1 mailbox unknown")
    ]
    again = await client.delete(path, headers=ann)  # nothing to clear: no second event
    assert again.status == 200
    assert len(await emitted(db, "identity.unreachable_cleared")) == 1
