"""Wiring of the SIP lines (pjsua2, the ``sip`` extra): ``[channels.sip]`` → one user agent
thread, one account per line, calls routed to managers and stored through ingest.

```toml
[channels.sip]
# media_dir = "..."                         # voicemails, recordings; default: the hub's media_dir
# max_calls = 64                            # pjsua call slots, all lines (a call takes 2)
[[channels.sip.lines]]
key = "office"
mode = "register"                            # or "listen" (direct INVITEs on host:port)
registrar = "sip:pbx.example.com"
user = "office"
password = "..."
host = "0.0.0.0"                             # bound; advertised unless public_address is set
port = 5060
# public_address = "203.0.113.5"             # in Contact, Via and the SDP (c=, o=) instead of host
# rtp_port_min = 10000                       # both or neither: the calls' RTP/RTCP ports
# rtp_port_max = 10999
# contact_rewrite = true                     # register lines behind NAT: learn the address
# keepalive_seconds = 15                     #   from the registrar; keep-alives (off by default)
# allow_from = ["198.51.100.0/24"]           # who may send requests (others: 403); empty: anyone
ring_timeout_seconds = 20                    # then the next manager's phone rings
callback_sla_minutes = 15                    # a missed call's call-back task is due by then
greeting_wav = "/etc/omnihub/greeting.wav"   # out of hours: played, then a voicemail
voicemail_max_seconds = 60
# record_calls = true                        # answered calls, both sides, attached to the call
# recording_retention_days = 90              # then deleted from the store; 0: kept forever
managers = { 1 = "sip:anna@pbx.example.com", 2 = "sip:boris@pbx.example.com" }
```

The network settings are per line (pjsua keeps them per transport and account); see
:mod:`connectors.sip.config` and the README's Telephony section.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from connectors.sip import available
from connectors.sip.bridge import Bridge
from connectors.sip.config import SipConfig, SipConfigError, parse_config
from connectors.sip.events import CallEnded, IncomingCall, LineStatus, SipEvent
from connectors.store import FileStore
from hub import sip_recordings as recordings
from hub.background import cancel_all
from hub.files import FILES
from hub.health import HEALTH
from hub.keys import CLOCK, DATABASE, INGEST, ROUTING, SETTINGS
from hub.settings import SettingsError
from hub.sip_calls import plan_for, store_call

if TYPE_CHECKING:  # pjsua2 is imported only when the lines start
    from connectors.sip.endpoint import SipEngine

log = logging.getLogger(__name__)
MISSING = (
    "SIP telephony disabled: pjsua2 is not installed (pip install 'omnihub[sip]'); "
    "calls come only from PBX webhooks"
)


@dataclass(slots=True)
class SipChannel:
    config: SipConfig
    store: FileStore
    bridge: Bridge[SipEvent] | None = None
    engine: SipEngine | None = None
    line_status: dict[str, LineStatus] = field(default_factory=dict)
    stored: asyncio.Event = field(default_factory=asyncio.Event)


SIP = web.AppKey("sip", SipChannel)


def install(app: web.Application) -> None:
    """Start the lines when ``[channels.sip]`` is configured and pjsua2 is installed."""
    table = app[SETTINGS].channels.get("sip")
    if table is None:
        return
    try:
        config = parse_config(table)
    except SipConfigError as exc:
        raise SettingsError(str(exc)) from exc
    store = app[FILES].add(config.media_dir or app[SETTINGS].media_dir)
    # Recordings stored earlier expire even while the lines cannot start.
    recordings.install(app, store, config.lines)
    if not available():
        log.warning(MISSING)
        for line in config.lines:
            app[HEALTH].register("sip", line.key, state="disabled", error=MISSING)
        return
    for line in config.lines:
        app[HEALTH].register("sip", line.key, secrets=(line.password,))
    log.info("sip: %d line(s) configured", len(config.lines))
    app[SIP] = SipChannel(config, store)
    app.cleanup_ctx.append(_run)


async def _run(app: web.Application) -> AsyncIterator[None]:
    from connectors.sip.endpoint import SipEngine  # pjsua2 only when it is used

    channel = app[SIP]
    bridge: Bridge[SipEvent] = Bridge(asyncio.get_running_loop())
    engine = SipEngine(
        bridge,
        app[CLOCK].now,
        log_level=channel.config.log_level,
        max_calls=channel.config.max_calls,
    )
    await asyncio.to_thread(engine.start)
    channel.bridge, channel.engine = bridge, engine
    try:
        for line in channel.config.lines:
            await bridge.submit(partial(engine.open_line, line))
    except Exception:
        await asyncio.to_thread(engine.stop)
        raise
    consumer = asyncio.create_task(_consume(app, channel, bridge, engine), name="sip-events")
    log.info("sip: %d line(s) up", len(channel.config.lines))
    yield
    await asyncio.to_thread(engine.stop)  # hangs up: the last CallEnded events are queued
    await asyncio.sleep(0)
    await cancel_all([consumer])
    while True:  # nothing lost: calls that ended during the shutdown are stored too
        try:
            event = bridge.drain_one()
        except LookupError:
            break
        await _handle(app, channel, bridge, engine, event)
    for spool in engine.spools:  # voicemails are in the store now
        await asyncio.to_thread(shutil.rmtree, spool, True)
    channel.bridge = channel.engine = None


async def _consume(
    app: web.Application, channel: SipChannel, bridge: Bridge[SipEvent], engine: SipEngine
) -> None:
    while True:
        event = await bridge.next_event()
        try:
            await _handle(app, channel, bridge, engine, event)
        except Exception:
            log.exception("sip: handling %r failed", event)


async def _handle(
    app: web.Application,
    channel: SipChannel,
    bridge: Bridge[SipEvent],
    engine: SipEngine,
    event: SipEvent,
) -> None:
    if isinstance(event, IncomingCall):
        line = next(ln for ln in channel.config.lines if ln.key == event.line)
        plan = await plan_for(app[DATABASE], app[ROUTING], app[INGEST].policy, line, event)
        log.info("sip: call %s from %s on %s: %s", event.call_id, event.caller, event.line, plan)
        with contextlib.suppress(Exception):
            await bridge.submit(partial(_apply, engine, event.line, event.call_id, plan))
    elif isinstance(event, CallEnded):
        line = next(ln for ln in channel.config.lines if ln.key == event.line)
        await store_call(app[INGEST], app[DATABASE], channel.store, line, event)
        channel.stored.set()
    else:
        channel.line_status[event.line] = event
        problem = None if event.ok else f"{event.code} {event.reason}"
        app[HEALTH].report("sip", event.line, "connected" if event.ok else "retrying", problem)
        log.info("sip: line %s: %s %s", event.line, event.code, event.reason)


def _apply(engine: SipEngine, line: str, call_id: str, plan: object) -> bool:
    from connectors.sip.events import CallPlan

    assert isinstance(plan, CallPlan)
    return engine.line(line).apply_plan(call_id, plan)
