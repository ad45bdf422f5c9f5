"""``GET /metrics`` (issue 15): the Prometheus text format, parsed with prometheus_client's
own parser; the counters move after an ingest; only loopback or an admin may read it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from crm_core.clock import ManualClock
from crm_core.db import Database
from hub.app import create_app
from hub.settings import Settings
from tests.factories import WHEN
from tests.integration.conftest import _people, inbound_body

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
Client = TestClient[Any, Any]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def _scrape(client: Client, headers: dict[str, str] | None = None) -> Samples:
    response = await client.get("/metrics", headers=headers or {})
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    samples: Samples = {}
    for family in text_string_to_metric_families(await response.text()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def _client(
    database_url: str,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
    **settings: Any,
) -> Client:
    clock.set(WHEN)
    return await aiohttp_client(
        create_app(
            Settings(database_url=database_url, media_dir=str(tmp_path / "media"), **settings),
            clock=clock,
        )
    )


async def test_the_counters_move_after_an_ingest(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    _ids, tokens = await _people(db)
    client = await _client(database_url, clock, aiohttp_client, tmp_path)
    before = await _scrape(client)  # from loopback: allowed without a token
    api = (("channel", "api"),)
    assert before.get(("omnihub_messages_in_total", api), 0.0) == 0.0
    for name in (
        "omnihub_outbox_oldest_pending_age_seconds",
        "omnihub_timers_due",
    ):
        assert (name, ()) in before

    auth = {"Authorization": f"Bearer {tokens['integration']}"}
    for n in (1, 2):
        response = await client.post("/api/v1/inbound", json=inbound_body(n), headers=auth)
        assert response.status == 201, await response.text()
    repeat = await client.post("/api/v1/inbound", json=inbound_body(1), headers=auth)
    assert repeat.status == 200

    after = await _scrape(client)
    assert after[("omnihub_messages_in_total", api)] == 2.0
    assert after[("omnihub_messages_in_repeats_total", api)] == 1.0
    assert after[("omnihub_ingest_seconds_count", api)] == 3.0
    assert after[("omnihub_ingest_seconds_bucket", (*api, ("le", "+Inf")))] == 3.0
    assert after[("omnihub_ingest_seconds_sum", api)] > 0
    assert (("omnihub_timers_due", ())) in after  # first-response timers, maybe not due yet
    pending = sum(v for (name, _), v in after.items() if name == "omnihub_outbox_pending")
    assert pending >= 0
    for kind in ("message", "webhook", "outbox"):
        assert ("omnihub_delivery_failures_total", (("kind", kind),)) in after


async def test_only_allowed_addresses_or_admins_may_scrape(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    _ids, tokens = await _people(db)
    client = await _client(
        database_url, clock, aiohttp_client, tmp_path, metrics_allow_from="10.0.0.0/8"
    )
    anonymous = await client.get("/metrics")
    assert anonymous.status == 401
    assert (await anonymous.json())["error"] == "unauthorized"
    for who, status in (("ann", 403), ("head", 403)):
        response = await client.get("/metrics", headers={"Authorization": f"Bearer {tokens[who]}"})
        assert response.status == status
        assert (await response.json())["error"] == "forbidden"
    bad = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert bad.status == 401
    samples = await _scrape(client, {"Authorization": f"Bearer {tokens['admin']}"})
    assert ("omnihub_timers_due", ()) in samples


async def test_two_apps_in_one_process_keep_their_own_figures(
    database_url: str,
    db: Database,
    clock: ManualClock,
    aiohttp_client: ClientFactory,
    tmp_path: Path,
) -> None:
    _ids, tokens = await _people(db)
    first = await _client(database_url, clock, aiohttp_client, tmp_path)
    second = await _client(database_url, clock, aiohttp_client, tmp_path)
    auth = {"Authorization": f"Bearer {tokens['integration']}"}
    response = await first.post("/api/v1/inbound", json=inbound_body(7), headers=auth)
    assert response.status == 201
    api = (("channel", "api"),)
    assert (await _scrape(first))[("omnihub_messages_in_total", api)] == 1.0
    assert (await _scrape(second)).get(("omnihub_messages_in_total", api), 0.0) == 0.0
