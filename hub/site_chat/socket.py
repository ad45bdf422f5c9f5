"""The widget's socket, ``GET /widget/v1/socket`` (the protocol: docs/site-chat.md).

One visitor's socket: a ``hello`` opens the visit (origin, identity, limits), the
``welcome`` gives the history, then the visitor's frames are handled as they come and
the conversation's events (replies, a manager typing or reading) are passed on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web

from connectors.site_chat.config import WidgetConfig
from connectors.site_chat.protocol import (
    MAX_FRAME_BYTES,
    Hello,
    MalformedFrameError,
    Page,
    Ping,
    Read,
    Say,
    Typing,
    read_frame,
)
from crm_core import site_visitors as visitors
from crm_core.events import RESYNC
from crm_core.journal import Journal
from hub.addresses import client_address, networks
from hub.keys import CLOCK, DATABASE, SETTINGS
from hub.sessions import same_origin
from hub.signals import SIGNALS, Signal
from hub.site_chat import SITE_CHAT, SiteChat
from hub.site_chat.rooms import OPENED
from hub.site_chat.saying import said
from hub.site_chat.visits import Visit, VisitRefusedError, open_visit, verified_user_id, widget_view

log = logging.getLogger(__name__)
routes = web.RouteTableDef()
HELLO_SECONDS = 10.0


@dataclass(slots=True)
class Visiting:
    """One socket's visit, as it goes on."""

    socket: web.WebSocketResponse
    widget: WidgetConfig
    visit: Visit
    language: str
    page: Page
    inbox: asyncio.Queue[Mapping[str, Any]]
    # the ids this socket's own messages were stored under: acked, never echoed back
    own: set[int] = field(default_factory=set)


@routes.get("/widget/v1/socket")
async def widget_socket(request: web.Request) -> web.StreamResponse:
    chat = request.app[SITE_CHAT]
    origin = request.headers.get("Origin")
    foreign = origin is not None and not same_origin(request)
    if foreign and not any(w.allows(origin) for w in chat.config.widgets):
        log.warning("site chat: a socket from %.200s refused (origin not allowed)", origin)
        raise web.HTTPForbidden(
            text='{"error": "origin_not_allowed", "message": "this origin may not open '
            "the widget's socket\"}",
            content_type="application/json",
        )
    address = _address(request)
    if not chat.sockets_by_address.take(address, chat.sockets_per_address):
        raise web.HTTPTooManyRequests(
            text='{"error": "too_many_sockets", "message": "too many open chats from here"}',
            content_type="application/json",
        )
    try:
        socket = web.WebSocketResponse(heartbeat=30.0, max_msg_size=MAX_FRAME_BYTES)
        await socket.prepare(request)
        await _serve(request, chat, socket, address)
        return socket
    finally:
        chat.sockets_by_address.give_back(address)


def _address(request: web.Request) -> str:
    found = client_address(request, networks(request.app[SETTINGS].trusted_proxies))
    return str(found) if found is not None else "unknown"


async def _serve(
    request: web.Request, chat: SiteChat, socket: web.WebSocketResponse, address: str
) -> None:
    try:
        hello = await _hello(socket)
        if hello is None:
            return
        visiting = await _open(request, chat, socket, hello, address)
    except VisitRefusedError as refused:
        await socket.close(code=refused.code, message=refused.reason.encode()[:120])
        return
    except MalformedFrameError as exc:
        await socket.close(code=4400, message=str(exc).encode()[:120])
        return
    visitor_key = str(visiting.visit.visitor.id)
    if not chat.sockets_by_visitor.take(visitor_key, visiting.widget.limits.sockets_per_visitor):
        await socket.close(code=4429, message=b"too many open tabs of this chat")
        return
    conversation_id = visiting.visit.visitor.conversation_id
    if conversation_id is not None:
        chat.rooms.join(conversation_id, visiting.inbox)
    else:
        chat.rooms.wait(visiting.visit.visitor.id, visiting.inbox)
    try:
        await _welcome(request, visiting)
        await _converse(request, chat, visiting)
    except MalformedFrameError as exc:
        await socket.close(code=4400, message=str(exc).encode()[:120])
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    except Exception:  # a fault of ours: the widget reconnects and sends again
        log.exception("site chat: a visitor's socket failed")
        await socket.close(code=1011, message=b"internal error; reconnect")
    finally:
        conversation_id = visiting.visit.visitor.conversation_id
        if conversation_id is not None:
            chat.rooms.leave(conversation_id, visiting.inbox)
        else:
            chat.rooms.stop_waiting(visiting.visit.visitor.id, visiting.inbox)
        chat.sockets_by_visitor.give_back(visitor_key)
        await socket.close()


async def _hello(socket: web.WebSocketResponse) -> Hello | None:
    try:
        async with asyncio.timeout(HELLO_SECONDS):
            message = await socket.receive()
    except TimeoutError:
        await socket.close(code=4408, message=b"no hello within 10 seconds")
        return None
    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if message.type is not WSMsgType.TEXT:
        raise MalformedFrameError("frames are JSON text")
    frame = read_frame(message.data)
    if not isinstance(frame, Hello):
        raise MalformedFrameError("the first frame is a hello")
    return frame


async def _open(
    request: web.Request, chat: SiteChat, socket: web.WebSocketResponse, hello: Hello, address: str
) -> Visiting:
    widget = chat.config.widget(hello.key)
    if widget is None:
        raise VisitRefusedError(4404, "no widget has this key")
    origin = request.headers.get("Origin")
    page_origin = hello.page.origin
    if not widget.allows(page_origin) or (
        origin is not None and not same_origin(request) and not widget.allows(origin)
    ):
        log.warning(
            "site chat: widget %s refused a page of %.200s (not in allowed_origins)",
            widget.key,
            page_origin or origin,
        )
        raise VisitRefusedError(4403, "this page's origin may not show the widget")
    user_id = verified_user_id(widget, hello)
    if hello.token is None and not await chat.sessions_by_address.allow(
        address, widget.limits.sessions_per_minute
    ):
        raise VisitRefusedError(4429, "too many new chats from this address; try again in a minute")
    visit = await open_visit(request.app, widget, hello, user_id)
    language = hello.language or (widget.language if widget.language != "auto" else "en")
    return Visiting(socket, widget, visit, language, hello.page, asyncio.Queue(200))


async def _welcome(request: web.Request, visiting: Visiting) -> None:
    visitor = visiting.visit.visitor

    def read(session: Any) -> tuple[list[dict[str, Any]], int]:
        history = visitors.history(session, visitor)
        return history, visitors.manager_read_up_to(session, visitor.conversation_id)

    history, read_up_to = await request.app[DATABASE].read(read)
    await visiting.socket.send_json(
        {
            "type": "welcome",
            "token": visiting.visit.token,
            "visitor": visitor.as_shown(),
            "widget": widget_view(request.app, visiting.widget, visiting.language),
            "messages": history,
            "read_up_to": read_up_to,
        }
    )


async def _converse(request: web.Request, chat: SiteChat, visiting: Visiting) -> None:
    socket = visiting.socket
    receiving = asyncio.create_task(socket.receive())
    event = asyncio.create_task(visiting.inbox.get())
    try:
        while not socket.closed:
            done, _ = await asyncio.wait({receiving, event}, return_when=asyncio.FIRST_COMPLETED)
            if event in done:
                if not await _pass_on(request, visiting, event.result()):
                    return
                event = asyncio.create_task(visiting.inbox.get())
            if receiving in done:
                message = receiving.result()
                if message.type is WSMsgType.TEXT:
                    await _handle(request, chat, visiting, message.data)
                elif message.type is WSMsgType.BINARY:
                    raise MalformedFrameError("frames are JSON text")
                else:  # closed, closing or an error (a frame over 64 KiB: 1009)
                    return
                receiving = asyncio.create_task(socket.receive())
    finally:
        for task in (receiving, event):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def _handle(request: web.Request, chat: SiteChat, visiting: Visiting, data: str) -> None:
    frame = read_frame(data)
    socket = visiting.socket
    visitor = visiting.visit.visitor
    if isinstance(frame, Ping):
        await socket.send_json({"type": "pong"})
    elif isinstance(frame, Say):
        async with chat.lock_of(visitor.id):
            answer, stored = await said(
                request.app, chat, visiting.widget, visitor, frame, visiting.page
            )
        shown = answer.get("message")
        if answer["type"] == "ack" and shown is not None and len(visiting.own) < 10_000:
            visiting.own.add(int(shown["id"]))
        if stored is not None:
            conversation_id = stored.conversation_id
            if conversation_id is not None and visitor.conversation_id is None:
                _joined(chat, visiting, conversation_id)
                chat.rooms.opened(visitor.id, conversation_id)  # the visitor's other tabs
            # what they typed into the form counts for their next message too
            visiting.visit = replace(
                visiting.visit,
                visitor=replace(
                    stored, read_up_to=(max(stored.read_up_to, visiting.visit.visitor.read_up_to))
                ),
            )
        await socket.send_json(answer)
    elif isinstance(frame, Typing):
        if visitor.conversation_id is not None and chat.typing_by_visitor.allow_now(
            str(visitor.id), 30
        ):
            typing: Signal = {
                "event": "conversation.typing",
                "conversation_id": visitor.conversation_id,
                "by": "contact",
                "on": frame.on,
            }
            await request.app[SIGNALS].send(typing)
    elif isinstance(frame, Read):
        await _read(request, visiting, frame.up_to)
    else:  # a second hello
        raise MalformedFrameError("hello comes once, first")


def _joined(chat: SiteChat, visiting: Visiting, conversation_id: int) -> None:
    visitor = visiting.visit.visitor
    chat.rooms.stop_waiting(visitor.id, visiting.inbox)
    visiting.visit = replace(
        visiting.visit, visitor=replace(visitor, conversation_id=conversation_id)
    )
    chat.rooms.join(conversation_id, visiting.inbox)


async def _read(request: web.Request, visiting: Visiting, up_to: int) -> None:
    visitor = visiting.visit.visitor
    now = request.app[CLOCK].now()

    def work(session: Any) -> int:
        journal = Journal(f"site_chat:{visiting.widget.key}", now)
        done = visitors.mark_read(session, journal, visitor, up_to)
        visitors.seen(session, visitor.id, now)
        journal.flush(session)
        return done

    read_up_to = await request.app[DATABASE].write(work)
    visiting.visit = replace(visiting.visit, visitor=replace(visitor, read_up_to=read_up_to))


async def _pass_on(request: web.Request, visiting: Visiting, event: Mapping[str, Any]) -> bool:
    """One event of the conversation to the visitor; False when the socket must close."""
    socket = visiting.socket
    if event is RESYNC:  # events were lost: the widget reconnects and reloads
        await socket.close(code=1012, message=b"reconnect")
        return False
    name = event.get("event")
    if name == OPENED and visiting.visit.visitor.conversation_id is None:
        # another tab's first message opened the chat: join it, and show what is there
        _joined(request.app[SITE_CHAT], visiting, int(event["conversation_id"]))
        joined = visiting.visit.visitor
        for earlier in await request.app[DATABASE].read(lambda s: visitors.history(s, joined)):
            await socket.send_json({"type": "message", "message": earlier})
    elif name == "message.created" and isinstance(event.get("message_id"), int):
        if event["message_id"] in visiting.own:
            return True  # this socket's own message: it has its ack
        visitor = visiting.visit.visitor
        shown = await request.app[DATABASE].read(
            lambda s: visitors.message_for(s, visitor, int(event["message_id"]))
        )
        if shown is not None:
            await socket.send_json({"type": "message", "message": shown})
    elif name == "conversation.typing" and event.get("by") == "manager":
        await socket.send_json({"type": "typing", "on": bool(event.get("on", True))})
    elif name == "conversation.read" and isinstance(event.get("message_id"), int):
        await socket.send_json({"type": "read", "up_to": event["message_id"]})
    return True
