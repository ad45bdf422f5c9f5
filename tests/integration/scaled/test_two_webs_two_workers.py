"""Two ``omnihub web`` and two ``omnihub worker`` processes on one PostgreSQL database and
Redis: inbound messages spread over both web processes (one client writing 200 times at
once to both among them) are each stored once, one contact per phone, every request
answered; an inbox socket on one web process hears of a reply sent through the other."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import aiohttp
import pytest

from crm_core.db import Database
from tests.integration.scaled.cluster import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    Answer,
    Cluster,
    bounded,
    inbound,
    phone_owners,
    post_inbound,
    seed_people,
    stored_inbound,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

MESSAGES = 5000  # in all, the hot client's included
HOT = 200  # from one phone, all at once, half to each web process
PER_PHONE = 3  # the others: each phone writes this often, in another format each time
CONCURRENCY = 32
HOT_NATIONAL = "9990001122"


def _formats(national: str) -> list[str]:
    n = national
    return [
        f"+7 {n[:3]} {n[3:6]} {n[6:8]} {n[8:]}",
        f"8 ({n[:3]}) {n[3:6]}-{n[6:8]}-{n[8:]}",
        f"7{n}",
    ]


def _workload() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the hot client's bodies, everyone else's), each body with its E.164 phone aside."""
    hot = []
    for i in range(HOT):  # by Telegram (a channel a reply can take), the phone known too
        body = inbound(f"hot-{i}", _formats(HOT_NATIONAL)[i % 3], f"again {i}")
        body.update(channel="telegram", channel_account="sales_bot")
        body["sender"]["identities"].append({"kind": "telegram", "value": "777001122"})
        hot.append(body)
    rest = []
    for i in range(MESSAGES - HOT):
        national = f"916{i // PER_PHONE:07d}"
        rest.append(inbound(f"msg-{i}", _formats(national)[i % PER_PHONE], f"question {i}"))
    return hot, rest


def _e164(body: dict[str, Any]) -> str:
    digits = "".join(c for c in body["sender"]["identities"][0]["value"] if c.isdigit())
    return "+7" + digits[-10:]


async def _socket_hears(
    socket: aiohttp.ClientWebSocketResponse, message_id: int, seconds: float
) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            frame = await socket.receive()
            assert frame.type == aiohttp.WSMsgType.TEXT, frame
            event = frame.json()
            if event.get("event") == "message.created" and event.get("message_id") == message_id:
                return dict(event)


async def test_two_webs_and_two_workers_store_each_message_once(
    cluster: Cluster, pg_url: str
) -> None:
    db = Database(pg_url)
    try:
        token = await seed_people(db)
        webs = [cluster.start("web"), cluster.start("web")]
        workers = [cluster.start("worker"), cluster.start("worker")]
        await cluster.ready(*webs, *workers)
        hot, rest = _workload()
        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=CONCURRENCY + HOT)
        started = time.monotonic()
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as client:

            def job(n: int, body: dict[str, Any]) -> Any:
                return lambda: post_inbound(client, webs[n % 2].base, token, body)

            at_once = [post_inbound(client, webs[i % 2].base, token, b) for i, b in enumerate(hot)]
            answers_rest, answers_hot = await asyncio.gather(
                bounded([job(i, body) for i, body in enumerate(rest)], CONCURRENCY),
                asyncio.gather(*at_once),
            )
        took = time.monotonic() - started
        answers: list[Answer] = [*answers_rest, *answers_hot]
        statuses = Counter(a.status for a in answers)
        print(f"\n{len(answers)} messages over 2 web processes in {took:.1f} s: {statuses}")
        failed = [a for a in answers if a.status not in (200, 201)]
        assert not failed, f"{failed[:5]}\n{cluster.logs()}"
        assert statuses == {201: MESSAGES}  # every external id is new

        # no message lost or doubled: one inbound row per external id, nothing else
        stored = await stored_inbound(db)
        assert sum(stored.values()) == MESSAGES
        assert set(stored) == {a.external_id for a in answers}
        assert set(stored.values()) == {1}
        assert len({a.data["message_id"] for a in answers if a.data}) == MESSAGES

        # one contact per phone, the one each answer named
        owners = await phone_owners(db)
        bodies = {b["external_id"]: b for b in (*hot, *rest)}
        answered: dict[str, set[int]] = {}
        for a in answers:
            assert a.data is not None
            answered.setdefault(_e164(bodies[a.external_id]), set()).add(a.data["contact_id"])
        assert len(answered) == 1 + (MESSAGES - HOT) // PER_PHONE
        assert {p: c for p, c in owners.items() if p in answered} == answered
        assert all(len(contacts) == 1 for contacts in answered.values())
        hot_answers = [a.data for a in answers_hot if a.data]
        assert len({d["conversation_id"] for d in hot_answers}) == 1

        # a browser on web 1 hears of a reply sent through web 2
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1 (any port)
        async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as browser:
            login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
            async with browser.post(webs[0].base + "/api/v1/session", json=login) as response:
                assert response.status == 200, await response.text()
                csrf = (await response.json())["csrf_token"]
            async with browser.ws_connect(webs[0].base + "/api/v1/live") as socket:
                assert (await socket.receive_json(timeout=10))["event"] == "hello"
                conversation = hot_answers[0]["conversation_id"]
                async with browser.post(
                    f"{webs[1].base}/api/v1/conversations/{conversation}/messages",
                    json={"text": "Thank you, we will call you back"},
                    headers={"X-CSRF-Token": csrf},
                ) as response:
                    assert response.status == 202, await response.text()
                    reply = await response.json()
                event = await _socket_hears(socket, reply["message_id"], 30)
        assert event["conversation_id"] == conversation
        for hub in (*webs, *workers):
            assert hub.process.poll() is None, hub.log_tail()
    finally:
        await db.dispose()
