"""``POST /api/v1/conversations/{id}/messages``: answer the client in their channel."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core.journal import Journal
from crm_core.replies import ReplyError, queue_reply, take_conversation
from hub.api.auth import TOKEN_OWNER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.reads import path_id
from hub.keys import CLOCK, DATABASE, RELAY

routes = web.RouteTableDef()


class Reply(BaseModel):
    """The text of a reply (files come with the attachment store)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    text: str = Field(min_length=1, max_length=65_536)


@routes.post("/api/v1/conversations/{id}/messages")
async def post_reply(request: web.Request) -> web.Response:
    conversation_id = path_id(request)
    reply = await parse_body(request, Reply)
    owner = request[TOKEN_OWNER]
    clock = request.app[CLOCK]

    def work(session: Session) -> int:
        journal = Journal(owner.actor, clock.now())
        message = queue_reply(
            session, journal, conversation_id, reply.text, author_manager_id=owner.manager_id
        )
        journal.flush(session)
        return message.id

    try:
        message_id = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("conversation") from None
    except ReplyError as exc:
        raise ApiError(409, "unreachable", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response({"message_id": message_id, "delivery_status": "queued"}, status=202)


@routes.post("/api/v1/conversations/{id}/take")
async def post_take(request: web.Request) -> web.Response:
    """A conversation offered to the whole team goes to the first manager who takes it."""
    conversation_id = path_id(request)
    owner = request[TOKEN_OWNER]
    if owner.manager_id is None:
        raise ApiError(403, "forbidden", "only a manager's token can take a conversation")
    manager_id = owner.manager_id
    clock = request.app[CLOCK]

    def work(session: Session) -> int | None:
        journal = Journal(owner.actor, clock.now())
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
