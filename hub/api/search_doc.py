"""The OpenAPI path and schemas of ``GET /api/v1/search``."""

from __future__ import annotations

from typing import Any

from crm_core.enums import Direction
from crm_core.search_words import MAX_QUERY
from hub.api.doc_parts import json_content as _json
from hub.api.ids import id_schema
from hub.api.search import MAX_LIMIT


def schemas() -> dict[str, Any]:
    nullable_text = {"type": ["string", "null"]}
    return {
        "ContactHit": {
            "type": "object",
            "required": ["id", "name", "company", "matched", "context", "link"],
            "properties": {
                "id": id_schema(),
                "name": nullable_text,
                "company": nullable_text,
                "matched": {
                    "type": "string",
                    "enum": ["phone", "whatsapp", "email", "telegram", "name"],
                    "description": "What matched: an identity of that kind, or the name "
                    "or company.",
                },
                "context": {
                    "type": "string",
                    "description": "The identity that matched (E.164 phone, address, "
                    "Telegram user id), or the name and company.",
                },
                "link": {"type": "string", "description": "The contact's page."},
            },
        },
        "MessageHit": {
            "type": "object",
            "required": [
                "id",
                "conversation_id",
                "contact_id",
                "contact_name",
                "channel",
                "direction",
                "created_at",
                "context",
                "highlights",
                "link",
            ],
            "properties": {
                "id": id_schema(),
                "conversation_id": id_schema(),
                "contact_id": id_schema(),
                "contact_name": nullable_text,
                "channel": {"type": "string"},
                "direction": {
                    "type": "string",
                    "enum": sorted(d.value for d in Direction),
                    "description": "in: the client's; out: a reply; note: a manager's "
                    "internal note.",
                },
                "created_at": {"type": "string", "format": "date-time"},
                "context": {
                    "type": "string",
                    "description": "The text around its first match (… where cut).",
                },
                "highlights": {
                    "type": "array",
                    "description": "[offset, length] of each matching word in context.",
                    "items": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 0},
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
                "link": {"type": "string", "description": "The conversation in the inbox."},
            },
        },
        "SearchResult": {
            "type": "object",
            "required": ["query", "contacts", "messages"],
            "properties": {
                "query": {"type": "string"},
                "contacts": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ContactHit"},
                },
                "messages": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/MessageHit"},
                },
            },
        },
    }


def paths() -> dict[str, Any]:
    return {
        "/api/v1/search": {
            "get": {
                "summary": "Find contacts and messages.",
                "description": "Contacts by any identity (a phone in any format finds its "
                "E.164 number, 4+ digits find the numbers containing them; an email in any "
                "case, or the beginning of one; @username: a Telegram username), by name "
                "and company (word prefixes, case- and accent-insensitive, ё as е); "
                "messages by their text (word stems, Russian and English: кластеры finds "
                "кластер). Every word must match. Contacts found by an identity first, "
                "then newest first; messages newest first. Scoped as the inbox: a manager "
                "finds only what they may open.",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_QUERY},
                        "description": "What to find.",
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
                        "description": "At most this many contacts and this many messages "
                        "(default 20).",
                    },
                ],
                "responses": {
                    "200": _json("SearchResult", "What was found."),
                    "400": _json("Error", "No q, a q with no words, or a bad limit."),
                    "401": _json("Error", "No valid API token."),
                },
            }
        }
    }
