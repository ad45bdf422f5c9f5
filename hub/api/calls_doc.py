"""The OpenAPI paths of the calls API (click-to-call and a contact's calls)."""

from __future__ import annotations

from typing import Any

from hub.api.calls import NewCall
from hub.api.ids import cursor_schema, id_schema

_REF = "#/components/schemas/{model}"


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def schemas() -> dict[str, Any]:
    return {
        "NewCall": NewCall.model_json_schema(ref_template=_REF),
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
                "summary": "A contact's calls, newest first.",
                "parameters": [
                    {
                        "name": "contact_id",
                        "in": "query",
                        "required": True,
                        "schema": id_schema(),
                    },
                    {
                        "name": "after",
                        "in": "query",
                        "schema": cursor_schema(),
                        "description": "Calls with ids below this one (next_after).",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 200},
                    },
                ],
                "responses": {
                    "200": _json("Page", "A page of calls."),
                    "404": _json("Error", "No such contact."),
                    **errors,
                },
            },
        }
    }
