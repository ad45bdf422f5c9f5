"""The OpenAPI paths of the calls API (click-to-call and the calls list)."""

from __future__ import annotations

from typing import Any

from crm_core.call_log import DISPOSITIONS, MISSED
from hub.api.calls import DIRECTIONS, NewCall
from hub.api.doc_parts import json_content as _json
from hub.api.doc_parts import query_param as _query
from hub.api.ids import cursor_schema, id_schema, nullable_id_schema

_REF = "#/components/schemas/{model}"


def _nullable(kind: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], **extra}


_CALL = {
    "type": "object",
    "required": ["id", "call_key", "contact_id", "direction", "disposition", "started_at"],
    "properties": {
        "id": id_schema(),
        "call_key": {"type": "string", "description": "sip:<Call-ID> or zadarma:<pbx_call_id>"},
        "channel_account_id": id_schema(),
        "line": {"type": "string", "description": "The line's (channel account's) key."},
        "contact_id": id_schema(),
        "contact_name": _nullable("string"),
        "conversation_id": id_schema(),
        "message_id": nullable_id_schema(),
        "direction": {"type": "string", "enum": sorted(DIRECTIONS)},
        "caller": {"type": "string"},
        "callee": {"type": "string"},
        "manager_id": {**nullable_id_schema(), "description": "Who took the call."},
        "owner_id": {
            **nullable_id_schema(),
            "description": "Whose call it is: who took it, else the conversation's manager.",
        },
        "manager_name": _nullable("string", description="The name of owner_id."),
        "started_at": {"type": "string", "format": "date-time"},
        "answered_at": _nullable("string", format="date-time"),
        "ended_at": _nullable("string", format="date-time"),
        "ring_seconds": _nullable("number", description="answered_at - started_at"),
        "duration_seconds": {"type": "integer", "description": "Talk time."},
        "disposition": {"type": "string", "enum": sorted(DISPOSITIONS)},
        "voicemail": _nullable("object"),
        "voicemail_url": _nullable("string", description="Where the voicemail plays."),
        "recording": _nullable(
            "object",
            description="An answered call's recording (both sides); null when the line "
            "does not record, or once its recording_retention_days removed it.",
        ),
        "recording_url": _nullable("string", description="Where the recording plays."),
        "created_at": {"type": "string", "format": "date-time"},
    },
}


def schemas() -> dict[str, Any]:
    return {
        "NewCall": NewCall.model_json_schema(ref_template=_REF),
        "Call": _CALL,
        "CallPage": {
            "type": "object",
            "required": ["items", "next_after"],
            "properties": {
                "items": {"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
                "next_after": nullable_id_schema(),
            },
        },
        "CallStarted": {
            "type": "object",
            "required": ["call_key", "line", "manager_id"],
            "properties": {
                "call_key": {"type": "string", "description": "sip:<Call-ID>, as stored"},
                "line": {"type": "string"},
                "manager_id": id_schema(),
            },
        },
    }


def paths() -> dict[str, Any]:
    errors = {
        "400": _json("Error", "The request is malformed; the body names the field."),
        "401": _json("Error", "No valid API token."),
    }
    return {
        "/api/v1/calls": {
            "post": {
                "summary": "Click-to-call: ring the manager's phone, then the client's.",
                "description": "The manager is the token's owner unless manager_id is given. "
                "The call is logged on the contact's conversation when it ends.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/NewCall"}}
                    },
                },
                "responses": {
                    "202": _json("CallStarted", "The manager's phone is ringing."),
                    "404": _json("Error", "No such contact, or it has no phone number."),
                    "409": _json(
                        "Error",
                        "The manager has no phone on a SIP line, or SIP telephony is off.",
                    ),
                    **errors,
                },
            },
            "get": {
                "summary": "Calls the viewer may see (or one contact's), newest first.",
                "description": "A manager sees the calls of the conversations they may see "
                "and the calls they took; a head of sales and an admin every call. With "
                "contact_id: every call of that contact (404 when the viewer may not see "
                "it). A call belongs to the manager who took it, else to its "
                "conversation's manager (owner_id): manager_id filters on that. Days are "
                "in the company's time zone (the `timezone` setting).",
                "parameters": [
                    _query("contact_id", id_schema(), "Only this contact's calls."),
                    _query(
                        "direction",
                        {"type": "string", "enum": sorted(DIRECTIONS)},
                        "in (the client called) or out (a manager called).",
                    ),
                    _query(
                        "disposition",
                        {"type": "string", "enum": sorted(DISPOSITIONS | {MISSED})},
                        "How the call ended; missed: every inbound call nobody answered "
                        "(busy, rejected, failed, voicemail too).",
                    ),
                    _query("manager_id", id_schema(), "Only calls that belong to this manager."),
                    _query(
                        "line",
                        {"type": "string", "minLength": 1, "maxLength": 120},
                        "Only calls on this line (its channel account's key).",
                    ),
                    _query(
                        "from",
                        {"type": "string", "format": "date"},
                        "Calls started on this day or later.",
                    ),
                    _query(
                        "to",
                        {"type": "string", "format": "date"},
                        "Calls started on this day or earlier.",
                    ),
                    _query(
                        "after",
                        cursor_schema(),
                        "Calls with ids below this one (next_after).",
                    ),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 200},
                        "At most this many (default 50).",
                    ),
                ],
                "responses": {
                    "200": _json("CallPage", "A page of calls."),
                    "404": _json("Error", "No such contact."),
                    **errors,
                },
            },
        }
    }
