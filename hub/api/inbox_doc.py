"""The OpenAPI paths of the inbox: sessions, the conversation list, a contact's history,
conversation actions, the funnel board, managers, attachments and live updates."""

from __future__ import annotations

from typing import Any

from hub.api.conversations import Assignment, Note, TypingState
from hub.api.doc_parts import json_content as _json
from hub.api.doc_parts import query_param as _query
from hub.api.ids import id_schema
from hub.api.people import ManagerPatch, NewManager, TeamPatch
from hub.api.session import FirstAdmin, Login, Preferences

_REF = "#/components/schemas/{model}"
_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": id_schema(),
}


_ERRORS = {
    "400": _json("Error", "The request is malformed; the body names the field."),
    "401": _json("Error", "Not logged in and no valid API token."),
    "403": _json("Error", "The role may not do this, or the CSRF token is missing."),
}
_MISSING = {"404": _json("Error", "No such item, or not one the caller may see.")}


def _body(schema: str) -> dict[str, Any]:
    return {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": _REF.format(model=schema)}}},
    }


def _action(summary: str, body: str | None = None, status: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": summary,
        "parameters": [_ID],
        "responses": {status: _json("Object", "The conversation."), **_MISSING, **_ERRORS},
    }
    if body is not None:
        operation["requestBody"] = _body(body)
    return operation


def schemas() -> dict[str, Any]:
    return {
        "Login": Login.model_json_schema(ref_template=_REF),
        "FirstAdmin": FirstAdmin.model_json_schema(ref_template=_REF),
        "Preferences": Preferences.model_json_schema(ref_template=_REF),
        "Note": Note.model_json_schema(ref_template=_REF),
        "Assignment": Assignment.model_json_schema(ref_template=_REF),
        "TypingState": TypingState.model_json_schema(ref_template=_REF),
        "NewManager": NewManager.model_json_schema(ref_template=_REF),
        "ManagerPatch": ManagerPatch.model_json_schema(ref_template=_REF),
        "TeamPatch": TeamPatch.model_json_schema(ref_template=_REF),
        "Me": {
            "type": "object",
            "required": ["manager", "csrf_token"],
            "properties": {
                "manager": {"type": "object"},
                "csrf_token": {"type": ["string", "null"]},
            },
        },
    }


def paths() -> dict[str, Any]:
    public: list[dict[str, Any]] = []
    return {
        "/api/v1/session": {
            "post": {
                "summary": "Log in: sets the session cookie; answers the CSRF token.",
                "security": public,
                "requestBody": _body("Login"),
                "responses": {
                    "200": _json("Me", "Logged in."),
                    "400": _ERRORS["400"],
                    "401": _json("Error", "The email or the password is wrong."),
                    "403": _json("Error", "Sent from another site's page (Origin)."),
                    "415": _json("Error", "The body is not application/json."),
                    "429": _json("Error", "Too many failed logins; see Retry-After."),
                },
            },
            "delete": {"summary": "Log out.", "responses": {"204": {"description": "Done."}}},
        },
        "/api/v1/setup": {
            "post": {
                "summary": "The first run: create the first admin with the one-time link.",
                "description": "While the hub has no active admin, each start logs a link "
                "/setup#<token> (valid setup_link_minutes). Its token, once, with a name, "
                "an email and a password, creates the admin and logs them in (the session "
                "cookie is set, as by POST /api/v1/session).",
                "security": public,
                "requestBody": _body("FirstAdmin"),
                "responses": {
                    "201": _json("Me", "The admin is created and logged in."),
                    "400": _ERRORS["400"],
                    "403": _json(
                        "Error",
                        "The token is wrong, used or expired, or the request came from "
                        "another site's page (Origin).",
                    ),
                    "409": _json("Error", "The hub has an admin already: log in instead."),
                    "415": _json("Error", "The body is not application/json."),
                },
            }
        },
        "/api/v1/me": {
            "get": {
                "summary": "Who is logged in.",
                "responses": {
                    "200": _json("Me", "Me"),
                    "403": _json("Error", "An integration's token speaks for nobody."),
                },
            },
            "patch": {
                "summary": "Change the interface language, or one's own password.",
                "requestBody": _body("Preferences"),
                "responses": {
                    "200": _json("Me", "Me"),
                    **_ERRORS,
                    "403": _json("Error", "current_password is wrong, or the CSRF token."),
                    "409": _json("Error", "The password was changed meanwhile."),
                    "429": _json("Error", "Too many wrong passwords; see Retry-After."),
                },
            },
        },
        "/api/v1/inbox": {
            "get": {
                "summary": "Conversations of a view, latest activity first, with unread counts.",
                "parameters": [
                    _query("view", {"enum": ["mine", "unassigned", "team", "all"]}),
                    _query("channel", {"type": "string"}),
                    _query("status", {"enum": ["open", "pending", "closed"]}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                ],
                "responses": {"200": _json("Object", "items and counts"), **_ERRORS},
            }
        },
        "/api/v1/contacts/{id}/timeline": {
            "get": {
                "summary": "The contact's messages across all channels; HTML mail sanitized.",
                "parameters": [
                    _ID,
                    _query("before", id_schema()),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
                ],
                "responses": {"200": _json("Object", "items and next_before"), **_ERRORS},
            }
        },
        "/api/v1/conversations/{id}/notes": {
            "post": _action("An internal note (never sent).", "Note", "201")
        },
        "/api/v1/conversations/{id}/assign": {
            "post": _action("Assign or transfer to a manager.", "Assignment")
        },
        "/api/v1/conversations/{id}/close": {"post": _action("Close the conversation.")},
        "/api/v1/conversations/{id}/reopen": {"post": _action("Reopen the conversation.")},
        "/api/v1/conversations/{id}/read": {"post": _action("Mark everything so far read.")},
        "/api/v1/conversations/{id}/typing": {
            "post": _action(
                "The manager is typing (or stopped): the client's site chat shows it.",
                "TypingState",
            )
        },
        "/api/v1/funnels/{code}/board": {
            "get": {
                "summary": "A funnel's stages with the deals the caller may see.",
                "parameters": [
                    {"name": "code", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {"200": _json("Object", "funnel and stages"), **_MISSING, **_ERRORS},
            }
        },
        "/api/v1/managers": {
            "get": {
                "summary": "Managers to assign and transfer to.",
                "responses": {"200": _json("Object", "items"), **_ERRORS},
            },
            "post": {
                "summary": "Add a manager (admin).",
                "requestBody": _body("NewManager"),
                "responses": {
                    "201": _json("Object", "The manager."),
                    "409": _json("Error", "The email is taken."),
                    **_ERRORS,
                },
            },
        },
        "/api/v1/managers/{id}": {
            "patch": {
                "summary": "Change a manager's role, team, capacity, password or active flag.",
                "parameters": [_ID],
                "requestBody": _body("ManagerPatch"),
                "responses": {"200": _json("Object", "The manager."), **_MISSING, **_ERRORS},
            }
        },
        "/api/v1/teams": {
            "get": {
                "summary": "Teams and whether each shares its work.",
                "responses": {"200": _json("Object", "items"), **_ERRORS},
            }
        },
        "/api/v1/teams/{id}": {
            "patch": {
                "summary": "Shared work (the team sees all its conversations) or competing.",
                "parameters": [_ID],
                "requestBody": _body("TeamPatch"),
                "responses": {"200": _json("Object", "The team."), **_MISSING, **_ERRORS},
            }
        },
        "/api/v1/messages/{id}/attachments/{index}": {
            "get": {
                "summary": "A file a message carries: images and audio (a voicemail's audio/wav) "
                "inline with their type, anything else as an application/octet-stream download.",
                "parameters": [
                    _ID,
                    {
                        "name": "index",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": 1000},
                    },
                ],
                "responses": {"200": {"description": "The file."}, **_MISSING, **_ERRORS},
            }
        },
        "/api/v1/live": {
            "get": {
                "summary": "WebSocket: ids of what changed, for things the caller may see.",
                "responses": {"101": {"description": "Switching to WebSocket."}, **_ERRORS},
            }
        },
    }
