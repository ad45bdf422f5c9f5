"""schemathesis against a live hub: the hooks and the webhook admin API never answer 5xx."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from crm_core.clock import ManualClock
from crm_core.db import Database
from hub.api.openapi import document
from hub.app import create_app
from hub.settings import Settings
from tests.factories import add_managers, api_token
from tests.schemathesis_run import fuzz
from webhooks.sources import KINDS

KEYS = {
    "form": {"secret": "hook-token"},
    "tilda": {"api_key": "tilda-key"},
    "google_ads": {"google_key": "g-key"},
    "vk": {"confirmation": "c0de", "secret": "vk-secret"},
    "meta": {
        "app_secret": "app-secret",
        "verify_token": "verify",
        "access_token": "token",
        "graph_base": "http://127.0.0.1:9/v21.0",
    },
    "yandex_forms": {"secret": "hook-token"},
    "zadarma": {"api_secret": "zd-secret"},
    "standard": {"secret": "whsec_c2NoZW1hdGhlc2lzLXRlc3Qtc2VjcmV0"},
}


def _schema() -> dict[str, Any]:
    """Our paths only, with each hook's ``source`` pinned to the configured key."""
    doc = copy.deepcopy(document())
    doc["paths"] = {
        path: item
        for path, item in doc["paths"].items()
        if path.startswith(("/hooks/", "/api/v1/webhooks/"))
    }
    for slug, kind in KINDS.items():
        pinned = {"type": "string", "enum": [f"src-{kind}"]}
        for operation in doc["paths"][f"/hooks/{slug}/{{source}}"].values():
            operation["parameters"] = [
                {**p, "schema": pinned} if p["name"] == "source" else p
                for p in operation["parameters"]
            ]
    return doc


@pytest.mark.timeout(300)  # every check of schemathesis, its stateful phase included
async def test_no_server_errors(sqlite_url: str, clock: ManualClock, tmp_path: Path) -> None:
    db = Database(sqlite_url)
    try:
        await add_managers(db, 1)
        plain = await api_token(db, "schemathesis")
    finally:
        await db.dispose()
    sources = [{"key": f"src-{kind}", "kind": kind, **opts} for kind, opts in KEYS.items()]
    settings = Settings(
        database_url=sqlite_url,
        max_body_bytes=64 * 1024,
        channels={"webhooks": {"sources": sources, "delivery_timeout_seconds": 1}},
    )
    await fuzz(
        create_app(settings, clock=clock),
        _schema(),
        [
            f"Authorization: Bearer {plain}",
            # The shared secrets of the token-checked sources, so that bodies reach the parsers.
            "X-Hook-Token: hook-token",
            "api_key: tilda-key",
        ],
        tmp_path,
    )
