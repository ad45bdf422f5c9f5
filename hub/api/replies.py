"""``POST /api/v1/conversations/{id}/messages``: answer the client in their channel (or
another of theirs), and ``.../take``: take a conversation offered to the whole team."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core.access import sees_conversation
from crm_core.conversation_actions import (
    ConversationActionError,
    conversation_on,
    visible_conversation,
)
from crm_core.journal import Journal
from crm_core.replies import ReplyError, queue_reply, take_conversation
from hub.api.auth import VIEWER, person
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, field_error, not_found
from hub.api.ids import path_id
from hub.keys import CLOCK, DATABASE, RELAY

routes = web.RouteTableDef()


class Reply(BaseModel):
    """The text of a reply, and optionally another of the contact's channel accounts to
    send it by (files come with the attachment store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=1, max_length=65_536)
    channel_account: str | None = Field(default=None, min_length=1, max_length=120)


@routes.post("/api/v1/conversations/{id}/messages")
async def post_reply(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    reply = await parse_body(request, Reply)
    viewer = request[VIEWER]
    clock = request.app[CLOCK]

    def work(session: Session) -> tuple[int, int]:
        journal = Journal(viewer.actor, clock.now())
        target = conversation_id
        if reply.channel_account is not None:
            target = conversation_on(
                session, journal, viewer, conversation_id, reply.channel_account
            )
        elif not sees_conversation(session, viewer, conversation_id):
            raise LookupError(f"conversation {conversation_id} not found")
        message = queue_reply(
            session, journal, target, reply.text, author_manager_id=viewer.manager_id
        )
        journal.flush(session)
        return message.id, target

    try:
        message_id, target = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("conversation") from None
    except ConversationActionError as exc:  # a channel account we do not have
        raise field_error("channel_account", str(exc)) from None
    except ReplyError as exc:
        raise ApiError(409, "unreachable", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(
        {"message_id": message_id, "conversation_id": target, "delivery_status": "queued"},
        status=202,
    )


@routes.post("/api/v1/conversations/{id}/take")
async def post_take(request: web.Request) -> web.Response:
    """A conversation offered to the whole team goes to the first manager who takes it."""
    conversation_id = path_id(request)
    viewer = person(request)
    manager_id = viewer.manager_id
    assert manager_id is not None
    clock = request.app[CLOCK]

    def work(session: Session) -> int | None:
        # Locked, then checked: a teammate who took it a moment ago (PostgreSQL re-reads
        # the row once their lock is gone) leaves it out of the viewer's scope, and what
        # the viewer may not see is not found, whatever the reason (the README's promise).
        visible_conversation(session, viewer, conversation_id)
        journal = Journal(viewer.actor, clock.now())
        conversation = take_conversation(session, journal, conversation_id, manager_id)
        journal.flush(session)
        return conversation.assignee_id

    try:
        assignee = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("conversation") from None
    except ReplyError as exc:
        raise ApiError(409, "taken", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response({"conversation_id": conversation_id, "assignee_id": assignee})
