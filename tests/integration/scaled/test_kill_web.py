"""``kill -9`` of a web process while inbound requests are in flight: the client retries
what got no answer (the same body, the same external id) against the other web process,
and each message lands exactly once, whether the dead process had committed it or not."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from typing import Any

import aiohttp
import pytest

from crm_core.db import Database
from tests.integration.scaled.cluster import (
    Answer,
    Cluster,
    inbound,
    phone_owners,
    post_inbound,
    seed_people,
    stored_inbound,
)

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(180)]

MESSAGES = 1500
PHONES = 500  # each phone writes three times
CONCURRENCY = 32
KILL_AFTER = 300  # answered requests before web 1 is killed


def _body(i: int) -> dict[str, Any]:
    national = f"925{i % PHONES:07d}"
    phone = (f"+7{national}", f"8{national}", f"7{national}")[i // PHONES % 3]
    return inbound(f"kill-{i}", phone, f"question {i}")


async def test_requests_cut_by_kill_9_land_once_when_retried_on_the_other_web(
    cluster: Cluster, pg_url: str
) -> None:
    db = Database(pg_url)
    try:
        token = await seed_people(db)
        first, second = cluster.start("web"), cluster.start("web")
        await cluster.ready(first, second)
        bodies = [_body(i) for i in range(MESSAGES)]
        answers: dict[str, Answer] = {}
        killed = asyncio.Event()
        in_flight_at_kill = 0
        in_flight = 0
        gate = asyncio.Semaphore(CONCURRENCY)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(
            timeout=timeout, connector=aiohttp.TCPConnector(limit=CONCURRENCY)
        ) as client:

            async def send(body: dict[str, Any]) -> None:
                nonlocal in_flight, in_flight_at_kill
                async with gate:
                    in_flight += 1
                    answer = await post_inbound(client, first.base, token, body)
                    in_flight -= 1
                answers[answer.external_id] = answer
                if not killed.is_set() and sum(a.status == 201 for a in answers.values()) >= (
                    KILL_AFTER
                ):
                    in_flight_at_kill = in_flight
                    os.kill(first.process.pid, signal.SIGKILL)
                    killed.set()

            await asyncio.gather(*(send(body) for body in bodies))
            assert killed.is_set()
            assert first.process.wait(10) == -signal.SIGKILL
            unanswered = [b for b in bodies if answers[b["external_id"]].status == 0]
            refused = [a for a in answers.values() if a.status not in (0, 201)]
            assert not refused, refused[:5]
            # requests were under way when the process died; whatever was not answered
            # before the kill (in flight or sent after it) got no answer at all
            stored_by_first = [b for b in bodies if answers[b["external_id"]].status == 201]
            assert in_flight_at_kill > 0
            assert KILL_AFTER <= len(stored_by_first) <= KILL_AFTER + in_flight_at_kill
            assert len(unanswered) == MESSAGES - len(stored_by_first)
            retried = [post_inbound(client, second.base, token, body) for body in unanswered]
            retries = {a.external_id: a for a in await asyncio.gather(*retried)}
            # a client that is unsure of answered ones too: web 2 knows them as duplicates
            again = stored_by_first[-CONCURRENCY:]
            repeats = await asyncio.gather(
                *(post_inbound(client, second.base, token, body) for body in again)
            )

        statuses = Counter(a.status for a in retries.values())
        print(
            f"\nkilled web 1 after {MESSAGES - len(unanswered)} answers with "
            f"{in_flight_at_kill} requests in flight; retried {len(unanswered)} on web 2: "
            f"{statuses[201]} stored now, {statuses[200]} already stored by web 1"
        )
        assert set(statuses) <= {200, 201}, [
            a for a in retries.values() if a.status not in (200, 201)
        ]
        final = {**answers, **retries}
        for repeat in repeats:
            first_answer = answers[repeat.external_id].data
            assert repeat.status == 200, repeat
            assert repeat.data is not None
            assert first_answer is not None
            assert repeat.data["duplicate"] is True
            assert repeat.data["message_id"] == first_answer["message_id"]
        for answer in retries.values():
            assert answer.data is not None
            assert answer.data["duplicate"] == (answer.status == 200)

        # each message exactly once, with the id its last answer named
        stored = await stored_inbound(db)
        assert stored == Counter({b["external_id"]: 1 for b in bodies})
        ids = [a.data["message_id"] for a in final.values() if a.data]
        assert len(ids) == len(set(ids)) == MESSAGES

        # one contact per phone, the one every answer for that phone named
        contacts: dict[str, set[int]] = {}
        for i, body in enumerate(bodies):
            data = final[body["external_id"]].data
            assert data is not None
            contacts.setdefault(f"+7925{i % PHONES:07d}", set()).add(data["contact_id"])
        owners = await phone_owners(db)
        assert {p: owners.get(p) for p in contacts} == contacts
        assert all(len(c) == 1 for c in contacts.values())
        assert second.process.poll() is None, second.log_tail()
    finally:
        await db.dispose()
