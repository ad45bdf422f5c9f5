"""What a hub process does: everything (``omnihub run``), the web half, or the worker half."""

from __future__ import annotations

import enum

from aiohttp import web


class ProcessRole(enum.StrEnum):
    ALL = "all"  # omnihub run: API, UI, WebSocket and every background loop, one process
    WEB = "web"  # omnihub web: API, UI, WebSocket, inbound webhooks; no background loops
    WORKER = "worker"  # omnihub worker: outbox relay, timers, channel loops; /healthz only

    @property
    def serves_api(self) -> bool:
        return self is not ProcessRole.WORKER

    @property
    def runs_background(self) -> bool:
        return self is not ProcessRole.WEB


ROLE = web.AppKey("role", ProcessRole)


def runs_background(app: web.Application) -> bool:
    """Whether this process runs the relay, timers and channel loops (not a web process)."""
    return app.get(ROLE, ProcessRole.ALL).runs_background
