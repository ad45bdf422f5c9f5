"""A manager's actions on a conversation: internal notes, assign and transfer, close and
reopen, and marking it read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core import conversation_actions as actions
from crm_core.access import sees_conversation
from crm_core.enums import ConversationStatus
from crm_core.journal import Journal
from crm_core.queries import plain
from hub.api.auth import VIEWER, person
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, field_error, not_found
from hub.api.ids import Id, path_id
from hub.keys import CLOCK, DATABASE, RELAY
from hub.signals import SIGNALS, Signal

routes = web.RouteTableDef()


class Note(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=1, max_length=65_536)


class Assignment(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    manager_id: Id


async def _change(
    request: web.Request, act: Callable[[Session, Journal], Any], status: int = 200
) -> web.Response:
    viewer = request[VIEWER]
    clock = request.app[CLOCK]

    def work(session: Session) -> dict[str, Any]:
        journal = Journal(viewer.actor, clock.now())
        result = plain(act(session, journal))
        journal.flush(session)
        return result

    try:
        result = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("conversation") from None
    except PermissionError as exc:
        raise ApiError(403, "forbidden", str(exc)) from None
    except actions.ConversationActionError as exc:  # names a manager that cannot take it
        raise field_error("manager_id", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(result, status=status)


@routes.post("/api/v1/conversations/{id}/notes")
async def post_note(request: web.Request) -> web.Response:
    """An internal note: colleagues see it in the history; the client never does."""
    conversation_id = path_id(request)
    note = await parse_body(request, Note)
    viewer = request[VIEWER]
    return await _change(
        request,
        lambda s, j: actions.add_note(s, j, viewer, conversation_id, note.text),
        status=201,
    )


@routes.post("/api/v1/conversations/{id}/assign")
async def post_assign(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    body = await parse_body(request, Assignment)
    viewer = request[VIEWER]
    return await _change(
        request, lambda s, j: actions.assign(s, j, viewer, conversation_id, body.manager_id)
    )


def _status_change(status: ConversationStatus) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        conversation_id = path_id(request)
        viewer = request[VIEWER]
        return await _change(
            request, lambda s, j: actions.set_status(s, j, viewer, conversation_id, status)
        )

    return handler


routes.post("/api/v1/conversations/{id}/close")(_status_change(ConversationStatus.CLOSED))
routes.post("/api/v1/conversations/{id}/reopen")(_status_change(ConversationStatus.OPEN))


@routes.post("/api/v1/conversations/{id}/read")
async def post_read(request: web.Request) -> web.Response:
    """Everything so far counts as read by this manager (unread counts drop to 0)."""
    conversation_id = path_id(request)
    viewer = person(request)
    now = request.app[CLOCK].now()
    try:
        last, moved = await request.app[DATABASE].write(
            lambda s: actions.mark_read(s, viewer, conversation_id, now)
        )
    except LookupError:
        raise not_found("conversation") from None
    if moved:  # nothing new read, nothing to say (every open inbox would fetch again)
        # the client's widget shows "read" (a signal: not stored, see hub/signals.py)
        read: Signal = {
            "event": "conversation.read",
            "conversation_id": conversation_id,
            "message_id": last,
        }
        await request.app[SIGNALS].send(read)
    return web.json_response({"conversation_id": conversation_id, "last_read_message_id": last})


class TypingState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    on: bool = True


@routes.post("/api/v1/conversations/{id}/typing")
async def post_typing(request: web.Request) -> web.Response:
    """The manager is typing a reply: the client's site chat shows it (nothing stored)."""
    conversation_id = path_id(request)
    body = await parse_body(request, TypingState)
    viewer = person(request)
    visible = await request.app[DATABASE].read(
        lambda s: sees_conversation(s, viewer, conversation_id)
    )
    if not visible:
        raise not_found("conversation")
    typing: Signal = {
        "event": "conversation.typing",
        "conversation_id": conversation_id,
        "by": "manager",
        "on": body.on,
    }
    await request.app[SIGNALS].send(typing)
    return web.json_response({"conversation_id": conversation_id, "on": body.on})
