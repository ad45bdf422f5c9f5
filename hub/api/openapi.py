"""The OpenAPI 3.1 document of the REST API, served at ``/api/v1/openapi.json``."""

from __future__ import annotations

from functools import cache
from typing import Any

from aiohttp import web

from hub.api import (
    calls_doc,
    channels,
    hooks_rejected,
    inbox_doc,
    lists_doc,
    parked,
    people,
    reports_doc,
    search_doc,
    webhooks_doc,
)
from hub.api.auth import ADMIN_PATHS, PUBLIC, SAFE_METHODS
from hub.api.deals import DealPatch, StageMove
from hub.api.doc_parts import json_content as _json
from hub.api.doc_parts import query_param as _query
from hub.api.ids import cursor_schema, id_schema, nullable_id_schema
from hub.api.inbound_schema import InboundBody
from hub.api.replies import Reply
from hub.api.tasks import NewTask, TaskPatch

routes = web.RouteTableDef()
OPENAPI_PATH = "/api/v1/openapi.json"
_REF = "#/components/schemas/{model}"


_ERRORS = {
    "400": _json("Error", "The request is malformed; the body names the field."),
    "401": _json("Error", "No valid API token."),
}
_PAGING = [
    {
        "name": "after",
        "in": "query",
        "schema": cursor_schema(),
        "description": "Return items with ids above this one (next_after of the previous page).",
    },
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
]
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": id_schema(),
}


def _list(summary: str, extra: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": _PAGING + extra,
            "responses": {"200": _json("Page", "A page of items."), **_ERRORS},
        }
    }


def _detail(summary: str, paged: bool = False) -> dict[str, Any]:
    return {
        "get": {
            "summary": summary,
            "parameters": [_ID, *(_PAGING if paged else [])],
            "responses": {
                "200": _json("Object", summary),
                "404": _json("Error", "No such item."),
                **_ERRORS,
            },
        }
    }


def _write(
    summary: str, schema: str | None, status: str = "200", with_id: bool = True
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [_ID] if with_id else [],
        "responses": {
            status: _json("Object", "The task with its history."),
            "404": _json("Error", "No such task."),
            "409": _json("Error", "The change is not allowed; the message says why."),
            **_ERRORS,
        },
    }
    if schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    return operation


@cache
def document() -> dict[str, Any]:
    body = InboundBody.model_json_schema(ref_template=_REF)
    schemas: dict[str, Any] = body.pop("$defs", {})
    schemas["InboundBody"] = body
    schemas["StageMove"] = StageMove.model_json_schema(ref_template=_REF)
    schemas["Reply"] = Reply.model_json_schema(ref_template=_REF)
    schemas["NewTask"] = NewTask.model_json_schema(ref_template=_REF)
    schemas["TaskPatch"] = TaskPatch.model_json_schema(ref_template=_REF)
    schemas["DealPatch"] = DealPatch.model_json_schema(ref_template=_REF)
    schemas["Error"] = {
        "type": "object",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string"},
            "message": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }
    schemas["IngestResult"] = {
        "type": "object",
        "required": ["duplicate", "contact_id", "conversation_id", "message_id"],
        "properties": {
            "duplicate": {"type": "boolean"},
            "contact_id": id_schema(),
            "conversation_id": id_schema(),
            "message_id": id_schema(),
            "deal_id": nullable_id_schema(),
            "task_id": nullable_id_schema(),
            "assignee_id": nullable_id_schema(),
            "contact_created": {"type": "boolean"},
            "deal_created": {"type": "boolean"},
            "merged_contact_ids": {"type": "array", "items": id_schema()},
        },
    }
    schemas["Page"] = {
        "type": "object",
        "required": ["items", "next_after"],
        "properties": {
            "items": {"type": "array", "items": {"type": "object"}},
            "next_after": nullable_id_schema(),
        },
    }
    schemas["Object"] = {"type": "object"}
    schemas.update(webhooks_doc.schemas())
    schemas.update(inbox_doc.schemas())
    for schema in list(schemas.values()):  # pydantic nests enums under $defs: hoist them
        schemas.update(schema.pop("$defs", {}))
    schemas.update(calls_doc.schemas())
    schemas.update(search_doc.schemas())
    schemas.update(parked.schemas())
    schemas.update(channels.schemas())
    schemas.update(hooks_rejected.schemas())
    schemas.update(people.identity_schemas())
    return _with_common_responses(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "omnihub API",
                "version": "1",
                "description": "Contacts, conversations, deals and tasks of the omnihub CRM.",
            },
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "token": {"type": "http", "scheme": "bearer"},
                    "session": {"type": "apiKey", "in": "cookie", "name": "omnihub_session"},
                },
            },
            "security": [{"token": []}, {"session": []}],
            "webhooks": webhooks_doc.webhooks(),
            "paths": {
                **webhooks_doc.paths(),
                **inbox_doc.paths(),
                **calls_doc.paths(),
                **reports_doc.paths(),
                **search_doc.paths(),
                **parked.paths(),
                **channels.paths(),
                **hooks_rejected.paths(),
                **people.identity_paths(),
                "/api/v1/inbound": {
                    "post": {
                        "summary": "Ingest one inbound message (the API channel).",
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/InboundBody"}
                                }
                            },
                        },
                        "responses": {
                            "201": _json(
                                "IngestResult", "Stored: contact, conversation, message, deal."
                            ),
                            "200": _json(
                                "IngestResult", "A repeat of an external id: nothing changed."
                            ),
                            "413": _json("Error", "The body is over the size limit."),
                            "415": _json("Error", "The body is not JSON."),
                            **_ERRORS,
                        },
                    }
                },
                "/api/v1/contacts": _list(
                    "Contacts with their identities.", lists_doc.CONTACT_FILTERS
                ),
                "/api/v1/contacts/{id}": _detail(
                    "A contact with identities (each with unreachable_at and "
                    "unreachable_reason, see Identity), touches and merges; is_test marks "
                    "an ad platform's test lead (no identities, routed to no one, in no report)."
                ),
                "/api/v1/conversations": _list(
                    "Conversations.",
                    [
                        _query("status", {"type": "string", "enum": ["open", "pending", "closed"]}),
                        _query("contact_id", id_schema()),
                    ],
                ),
                "/api/v1/conversations/{id}": _detail(
                    "A conversation with a page of messages.", True
                ),
                "/api/v1/conversations/{id}/messages": {
                    "post": {
                        "summary": "Reply in the client's channel (queued, sent by the outbox).",
                        "parameters": [_ID],
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Reply"}
                                }
                            },
                        },
                        "responses": {
                            "202": _json("Object", "Queued: message_id and delivery_status."),
                            "404": _json("Error", "No such conversation."),
                            "409": _json("Error", "The channel cannot reach this contact."),
                            **_ERRORS,
                        },
                    }
                },
                "/api/v1/deals": _list("Deals, by funnel and stage.", lists_doc.DEAL_FILTERS),
                "/api/v1/deals/{id}": {
                    **_detail("A deal with its stage history and its history of changes."),
                    "patch": {
                        "summary": "Set a deal's title, amount, currency, owner or product.",
                        "parameters": [_ID],
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/DealPatch"}
                                }
                            },
                        },
                        "responses": {
                            "200": _json("Object", "The deal with its history."),
                            "404": _json("Error", "No such deal (or not yours to see)."),
                            **_ERRORS,
                        },
                    },
                },
                "/api/v1/products": {
                    "get": {
                        "summary": "The products a deal may be about (the products setting).",
                        "responses": {
                            "200": _json("Object", "items: code and name"),
                            "401": _ERRORS["401"],
                        },
                    }
                },
                "/api/v1/deals/{id}/stage": {
                    "post": {
                        "summary": "Move a deal to another stage of its funnel (won, lost...).",
                        "parameters": [_ID],
                        "requestBody": {
                            "required": True,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/StageMove"}
                                }
                            },
                        },
                        "responses": {
                            "200": _json("Object", "The deal, moved, with its stage history."),
                            "404": _json("Error", "No such deal."),
                            "409": _json(
                                "Error", "No such stage in its funnel, or no lost reason."
                            ),
                            **_ERRORS,
                        },
                    }
                },
                "/api/v1/funnels": {
                    "get": {
                        "summary": "Funnels with their ordered stages.",
                        "responses": {
                            "200": _json("Object", "The funnels."),
                            "401": _ERRORS["401"],
                        },
                    }
                },
                "/api/v1/tasks": {
                    **_list(
                        "Tasks.",
                        [
                            _query(
                                "status", {"type": "string", "enum": ["open", "done", "cancelled"]}
                            ),
                            _query("view", {"type": "string", "enum": ["mine", "overdue", "all"]}),
                            _query("assignee_id", id_schema()),
                            _query("deal_id", id_schema()),
                        ],
                    ),
                    "post": _write(
                        "Create a task for a contact, deal or conversation.",
                        "NewTask",
                        status="201",
                        with_id=False,
                    ),
                },
                "/api/v1/tasks/{id}": {
                    **_detail("A task with its history."),
                    "patch": _write("Reassign, reschedule or rename a task.", "TaskPatch"),
                },
                "/api/v1/conversations/{id}/take": {
                    "post": {
                        "summary": "Take a conversation offered to the whole team (first wins).",
                        "parameters": [_ID],
                        "responses": {
                            "200": _json("Object", "conversation_id and assignee_id"),
                            "403": _json("Error", "Not a manager's token."),
                            "404": _json("Error", "No such conversation."),
                            "409": _json("Error", "Someone took it first."),
                            **_ERRORS,
                        },
                    }
                },
                "/api/v1/routing": {
                    "get": {
                        "summary": "The teams, rules and funnel automation in force.",
                        "responses": {
                            "200": _json("Object", "source and document"),
                            "401": _ERRORS["401"],
                        },
                    },
                    "put": {
                        "summary": "Replace the routing: checked whole, stored, then in force.",
                        "requestBody": {
                            "required": True,
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "responses": {"200": _json("Object", "The stored version."), **_ERRORS},
                    },
                },
                "/api/v1/tasks/{id}/complete": {"post": _write("Complete a task.", None)},
                "/api/v1/tasks/{id}/reopen": {"post": _write("Reopen a completed task.", None)},
                "/api/v1/merges/{id}/undo": {
                    "post": {
                        "summary": "Undo a contact merge: what moved goes back.",
                        "parameters": [_ID],
                        "responses": {
                            "200": _json("Object", "The merge record, now undone."),
                            "404": _json("Error", "No such merge."),
                            "409": _json("Error", "Already undone, or a later merge first."),
                            **_ERRORS,
                        },
                    }
                },
            },
        }
    )


# What the middlewares answer before (or besides) a handler: said once, for every operation.
_MALFORMED = _json("Error", "A parameter or the body is malformed; the body names which.")
_CSRF_OR_ROLE = _json(
    "Error",
    "Not allowed: the caller's role may not, or a session's change lacks its X-CSRF-Token.",
)
_TOO_LARGE = _json("Error", "The body is over the size limit (checked before reading it).")
_NOT_JSON = _json("Error", "The body must be sent as application/json.")
_NOT_FOUND = _json("Error", "No such item, or one the caller may not see.")
_UNAVAILABLE = _json(
    "Error",
    "The database is unavailable or busy (restarting, unreachable): send the request again "
    "after `Retry-After` seconds (an inbound message sent again is stored once).",
)


_STORABLE = "^[^\\x00]*$"  # crm_core.text: no NUL in any text, in a body or a parameter


def _storable_text(schema: Any) -> None:
    """Every text the API takes says that it may not hold a NUL (a 400 names the field)."""
    if isinstance(schema, list):
        for item in schema:
            _storable_text(item)
    elif isinstance(schema, dict):
        if schema.get("type") == "string" and not {"pattern", "enum", "const"} & schema.keys():
            schema["pattern"] = _STORABLE
        for item in schema.values():
            _storable_text(item)


def _with_common_responses(doc: dict[str, Any]) -> dict[str, Any]:
    """Every response an operation can give is in the document: the handler's own, and
    those of the middlewares (a malformed parameter, authentication, the CSRF check and
    the admin-only paths, the body limit, a body that is not JSON, an unknown id, the
    database away).
    Every text it takes is marked as refusing NUL."""
    _storable_text(doc["components"]["schemas"])
    for item in doc["paths"].values():
        for operation in item.values():
            _storable_text(operation.get("parameters", []))
            _storable_text(operation.get("requestBody", {}))
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault("400", _MALFORMED)
            responses.setdefault("503", _UNAVAILABLE)
            if not path.startswith("/api/"):
                continue
            public = (method.upper(), path) in PUBLIC
            if not public:
                responses.setdefault("401", _ERRORS["401"])
            unsafe = method.upper() not in SAFE_METHODS
            if not public and (unsafe or path.startswith(ADMIN_PATHS)):
                responses.setdefault("403", _CSRF_OR_ROLE)
            if "requestBody" in operation:
                responses.setdefault("413", _TOO_LARGE)
                responses.setdefault("415", _NOT_JSON)
            if "{" in path:
                responses.setdefault("404", _NOT_FOUND)
    return doc


@routes.get(OPENAPI_PATH)
async def get_openapi(_request: web.Request) -> web.Response:
    return web.json_response(document())
