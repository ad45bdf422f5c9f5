"""Tasks through the API: create, change (reassign, reschedule), complete, reopen, history."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from crm_core import queries
from crm_core.access import Viewer, sees_contact, sees_conversation, sees_deal, sees_task
from crm_core.enums import TaskKind
from crm_core.journal import Journal
from crm_core.models import Task
from crm_core.tasks import (
    TaskChange,
    TaskError,
    change_task,
    complete_task,
    create_task,
    reopen_task,
    task_history,
)
from hub.api.auth import VIEWER
from hub.api.bodies import parse_body
from hub.api.errors import ApiError, not_found
from hub.api.ids import Id, path_id
from hub.api.moments import Moment
from hub.keys import CLOCK, DATABASE, RELAY, ROUTING

routes = web.RouteTableDef()
_STRICT = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class NewTask(BaseModel):
    model_config = _STRICT
    kind: TaskKind = TaskKind.FOLLOW_UP
    title: str = Field(min_length=1, max_length=300)
    assignee_id: Id | None = None
    due_at: Moment | None = None
    contact_id: Id | None = None
    deal_id: Id | None = None
    conversation_id: Id | None = None


class TaskPatch(BaseModel):
    model_config = _STRICT
    title: str | None = Field(default=None, min_length=1, max_length=300)
    assignee_id: Id | None = None
    due_at: Moment | None = None


async def _run(
    request: web.Request,
    act: Callable[[Session, Journal], Task],
    visible: Callable[[Session, Viewer], bool],
    status: int = 200,
) -> web.Response:
    viewer = request[VIEWER]
    clock = request.app[CLOCK]

    def work(session: Session) -> queries.Row:
        if not visible(session, viewer):
            raise LookupError("not visible")
        journal = Journal(viewer.actor, clock.now())
        task = act(session, journal)
        journal.flush(session)
        return {**queries.plain(task), "history": task_history(session, task.id)}

    try:
        result = await request.app[DATABASE].write(work)
    except LookupError:
        raise not_found("task") from None
    except TaskError as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    request.app[RELAY].wake()
    return web.json_response(result, status=status)


@routes.post("/api/v1/tasks")
async def post_task(request: web.Request) -> web.Response:
    body = await parse_body(request, NewTask)
    author = request[VIEWER].manager_id

    def visible(session: Session, viewer: Viewer) -> bool:
        """What the task hangs on must be the viewer's to see."""
        return (
            (body.contact_id is None or sees_contact(session, viewer, body.contact_id))
            and (body.deal_id is None or sees_deal(session, viewer, body.deal_id))
            and (
                body.conversation_id is None
                or sees_conversation(session, viewer, body.conversation_id)
            )
        )

    return await _run(
        request,
        lambda s, j: create_task(
            s,
            j,
            kind=body.kind,
            title=body.title,
            assignee_id=body.assignee_id,
            due_at=body.due_at,
            author_id=author,
            contact_id=body.contact_id,
            deal_id=body.deal_id,
            conversation_id=body.conversation_id,
        ),
        visible,
        status=201,
    )


@routes.get("/api/v1/tasks/{id}")
async def get_task(request: web.Request) -> web.Response:
    task_id = path_id(request)

    viewer = request[VIEWER]

    def work(session: Session) -> queries.Row | None:
        task = session.get(Task, task_id)
        if task is None or not sees_task(session, viewer, task_id):
            return None
        return {**queries.plain(task), "history": task_history(session, task_id)}

    found = await request.app[DATABASE].read(work)
    if found is None:
        raise not_found("task")
    return web.json_response(found)


@routes.patch("/api/v1/tasks/{id}")
async def patch_task(request: web.Request) -> web.Response:
    task_id = path_id(request)
    body = await parse_body(request, TaskPatch)
    change = TaskChange(title=body.title, assignee_id=body.assignee_id, due_at=body.due_at)
    return await _run(request, lambda s, j: change_task(s, j, task_id, change), _sees(task_id))


@routes.post("/api/v1/tasks/{id}/complete")
async def post_complete(request: web.Request) -> web.Response:
    task_id = path_id(request)
    automation = request.app[ROUTING].automation
    return await _run(
        request, lambda s, j: complete_task(s, j, task_id, automation), _sees(task_id)
    )


@routes.post("/api/v1/tasks/{id}/reopen")
async def post_reopen(request: web.Request) -> web.Response:
    task_id = path_id(request)
    return await _run(request, lambda s, j: reopen_task(s, j, task_id), _sees(task_id))


def _sees(task_id: int) -> Callable[[Session, Viewer], bool]:
    return lambda session, viewer: sees_task(session, viewer, task_id)
