"""Signals: passing events that are not stored (someone is typing, a manager has read a
conversation) to every process's live sockets.

One process (SQLite): straight onto the bus. PostgreSQL: ``NOTIFY`` on
:data:`SIGNAL_CHANNEL`, which every process's :class:`~hub.broadcast.LiveBroadcast`
listens to and passes on to its bus (the sender's own process included). A signal may
be lost (a listener reconnecting); nothing depends on one arriving.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from crm_core.db import Database
from crm_core.events import EventBus

log = logging.getLogger(__name__)
SIGNAL_CHANNEL = "omnihub_signal"
Signal = Mapping[str, str | int | bool]


class Signals:
    def __init__(self, db: Database, bus: EventBus) -> None:
        self._db = db
        self._bus = bus

    async def send(self, signal: Signal) -> None:
        if self._db.is_sqlite:
            self._bus.deliver([signal])
            return
        payload = json.dumps(dict(signal), separators=(",", ":"))[:7900]
        statement = text("SELECT pg_notify(:channel, :payload)")
        try:
            await self._db.write(
                lambda s: s.execute(statement, {"channel": SIGNAL_CHANNEL, "payload": payload})
            )
        except SQLAlchemyError as exc:  # a lost signal costs an indicator, nothing more
            log.warning("signals: could not send %s (%s)", signal.get("event"), exc)


SIGNALS = web.AppKey("signals", Signals)
