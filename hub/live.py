"""Live updates for the inbox: a WebSocket that says what changed, never what it says.

Each committed event (from the outbox, through the :class:`EventBus`) that concerns
something the viewer may see goes out as ids only: the event's name and the ids of the
conversation, contact, deal, task or message it touched. The page fetches what it shows
again through the REST API, which applies the viewer's scope once more. A manager also
hears of a conversation taken away from them, so that their list drops it.

With several web processes (PostgreSQL) every process's bus hears every event
(:mod:`hub.broadcast`: the relay announces with ``NOTIFY``, each process listens), so a
socket on any process gets what its viewer may see, in order per conversation. When
events may have been lost on the way (the listener's connection dropped), the socket
is closed: the page reconnects and fetches again, as on any reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy.orm import Session

from crm_core.access import Viewer, sees_contact, sees_conversation, sees_deal, sees_task
from crm_core.events import RESYNC
from hub.api.auth import VIEWER
from hub.api.errors import ApiError
from hub.keys import DATABASE, EVENTS
from hub.sessions import same_origin

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
IDS = ("conversation_id", "contact_id", "deal_id", "task_id", "message_id")


@routes.get("/api/v1/live")
async def live(request: web.Request) -> web.StreamResponse:
    _same_origin(request)
    viewer = request[VIEWER]
    socket = web.WebSocketResponse(heartbeat=25.0, max_msg_size=4096)
    await socket.prepare(request)
    queue = request.app[EVENTS].subscribe()
    reader = asyncio.create_task(_drain(socket))
    try:
        await socket.send_json({"event": "hello"})
        while not socket.closed:
            getter = asyncio.create_task(queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            payload = getter.result()
            if payload is RESYNC:  # events were lost: the page reconnects and fetches again
                await socket.close(code=WSCloseCode.SERVICE_RESTART)
                break
            if await _concerns(request, viewer, payload):
                await socket.send_json(_summary(payload))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        request.app[EVENTS].unsubscribe(queue)
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        await socket.close()
    return socket


def _same_origin(request: web.Request) -> None:
    """Browsers send cookies with cross-site WebSocket handshakes: refuse other origins."""
    if not same_origin(request):
        raise ApiError(403, "forbidden", "the WebSocket must be opened from the hub's own pages")


async def _drain(socket: web.WebSocketResponse) -> None:
    """Read (and ignore) what the page sends, until it closes."""
    async for message in socket:
        if message.type == WSMsgType.ERROR:
            break


def _summary(payload: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"event": payload.get("event")}
    for name in IDS:
        if isinstance(payload.get(name), int):
            out[name] = payload[name]
    if out["event"] == "conversation.typing":  # who is typing: the client, or a colleague
        out["by"] = "manager" if payload.get("by") == "manager" else "contact"
        out["on"] = payload.get("on") is not False
    return out


async def _concerns(request: web.Request, viewer: Viewer, payload: Mapping[str, Any]) -> bool:
    if viewer.sees_all:
        return True
    me = viewer.manager_id
    if me is not None and me in (payload.get("from_manager_id"), payload.get("assignee_id")):
        return True

    def check(session: Session) -> bool:
        checks = (
            ("conversation_id", sees_conversation),
            ("deal_id", sees_deal),
            ("task_id", sees_task),
            ("contact_id", sees_contact),
        )
        for name, sees in checks:
            value = payload.get(name)
            if isinstance(value, int):
                return sees(session, viewer, value)
        return False

    return await request.app[DATABASE].read(check)
