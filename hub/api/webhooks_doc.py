"""The OpenAPI paths of the inbound hooks (``/hooks/...``) and the webhook admin API,
and the schemas of the outbound webhooks (one per event, from ``crm_core.event_types``)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from crm_core.event_types import EVENT_DATA
from hub.api.doc_parts import json_content as _json
from hub.api.ids import MAX_ID, MIN_ID, cursor_schema, id_schema
from hub.api.webhooks import Replay, SubscriptionIn, SubscriptionPatch
from webhooks.sources import KINDS

_REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return _json("Error", description)


_HOOK_ERRORS = {
    "400": _error("The body is malformed; the message says how. Nothing is written."),
    "401": _error("The signature, token or key does not match. Nothing is written."),
    "404": _error("No such source (or the source is of another kind)."),
    "413": _error("The body is over the size limit."),
    "415": _error("The body is not of a media type the source takes. Nothing is written."),
}
_SOURCE = {
    "name": "source",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,100}$"},
    "description": "The source's key in [channels.webhooks].",
}
_ANY_OBJECT = {"type": "object", "additionalProperties": True}
_DESCRIPTIONS = {
    "forms": "A landing-page form (JSON, urlencoded or multipart); X-Hook-Token or "
    "X-Hook-Timestamp + X-Hook-Signature; Idempotency-Key optional.",
    "tilda": "Tilda's form webhook (urlencoded); answers test=test with ok.",
    "google-ads": "Google Ads lead form webhook (JSON with google_key).",
    "vk": "VK Callback API: confirmation, lead_forms_new; answers ok.",
    "meta": "Meta Lead Ads leadgen notifications, signed with X-Hub-Signature-256.",
    "yandex-forms": "Yandex Forms HTTP request (JSON-RPC 2.0 or a JSON object); X-Hook-Token.",
    "zadarma": "Zadarma PBX notifications (urlencoded) with the Signature header.",
    "standard": "Any Standard Webhooks sender (webhook-id, webhook-timestamp, webhook-signature).",
}
_HEADERS = [
    {"name": "X-Hook-Token", "in": "header", "schema": {"type": "string"}},
    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string", "maxLength": 150}},
]


def _hook(slug: str) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ANY_OBJECT}}
    if slug in ("forms", "tilda", "zadarma"):
        content["application/x-www-form-urlencoded"] = {"schema": _ANY_OBJECT}
    if slug in ("forms", "tilda"):
        content["multipart/form-data"] = {"schema": _ANY_OBJECT}
    responses: dict[str, Any] = {
        "200": {"description": "Stored (or a repeat), or a handshake answered."},
        **_HOOK_ERRORS,
    }
    if slug == "meta":
        responses["200"] = {
            "description": "Each lead stands alone: the stored ones are in leads; one the "
            "Graph API did not give is in parked (GET /api/v1/parked) and, when the error "
            "can heal, fetched again in the background."
        }
    item: dict[str, Any] = {
        "post": {
            "summary": _DESCRIPTIONS[slug],
            "security": [],
            "parameters": [_SOURCE, *_HEADERS],
            "requestBody": {"required": True, "content": content},
            "responses": responses,
        }
    }
    if slug in ("meta", "zadarma"):
        query = ["hub.mode", "hub.verify_token", "hub.challenge"] if slug == "meta" else ["zd_echo"]
        item["get"] = {
            "summary": "The platform's URL check (hub.challenge / zd_echo).",
            "security": [],
            "parameters": [
                _SOURCE,
                *(
                    {"name": q, "in": "query", "schema": {"type": "string"}, "required": True}
                    for q in query
                ),
            ],
            "responses": {
                "200": {"description": "The challenge, echoed as text."},
                **_HOOK_ERRORS,
            },
        }
    return item


_ID = {
    "name": "id",
    "in": "path",
    "required": True,
    "schema": id_schema(),
}
_PAGING = [
    {"name": "after", "in": "query", "schema": cursor_schema()},
    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
]
_API_ERRORS = {"400": _error("Malformed; the body names the field."), "401": _error("No token.")}
_DELIVERY_ID = {
    "name": "delivery_id",
    "in": "path",
    "required": True,
    "schema": id_schema(),
    "description": "An id from the delivery log (GET .../deliveries).",
}


def paths() -> dict[str, Any]:
    hooks = {f"/hooks/{slug}/{{source}}": _hook(slug) for slug in KINDS}
    subscriptions = "/api/v1/webhooks/subscriptions"
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/SubscriptionIn"}}}
    patch = {"application/json": {"schema": {"$ref": "#/components/schemas/SubscriptionPatch"}}}
    return {
        **hooks,
        subscriptions: {
            "post": {
                "summary": "Subscribe a URL to events (signed as Standard Webhooks say).",
                "requestBody": {"required": True, "content": body},
                "responses": {
                    "201": _json(
                        "WebhookSubscription",
                        "Created; a generated secret is in this answer only.",
                    ),
                    **_API_ERRORS,
                },
            },
            "get": {
                "summary": "Webhook subscriptions (never their secrets).",
                "parameters": _PAGING,
                "responses": {"200": _json("Page", "A page of subscriptions."), **_API_ERRORS},
            },
        },
        f"{subscriptions}/{{id}}": {
            "get": {
                "summary": "One subscription: active, failure count, why it was disabled.",
                "parameters": [_ID],
                "responses": {
                    "200": _json("WebhookSubscription", "The subscription."),
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            },
            "delete": {
                "summary": "Delete a subscription, its delivery log and its deliveries not "
                "yet done (dropped with it, never sent).",
                "parameters": [_ID],
                "responses": {
                    "204": {"description": "Deleted."},
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            },
            "patch": {
                "summary": "Change a subscription; active=true re-enables a disabled one "
                "and sends, in order, the deliveries that waited while it was off.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": patch},
                "responses": {
                    "200": _json("WebhookSubscription", "The subscription, changed."),
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            },
        },
        f"{subscriptions}/{{id}}/deliveries": {
            "get": {
                "summary": "The delivery log: each attempt, its status code or error.",
                "parameters": [_ID, *_PAGING],
                "responses": {
                    "200": _json("Page", "A page of delivery attempts."),
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            }
        },
        f"{subscriptions}/{{id}}/deliveries/{{delivery_id}}/retry": {
            "post": {
                "summary": "Send the event of a logged attempt again (same webhook-id and "
                "body): made due now if still waiting, else queued anew; in its order.",
                "parameters": [_ID, _DELIVERY_ID],
                "responses": {
                    "202": _json("WebhookQueued", "Queued (queued=0: it was waiting)."),
                    "404": _error("No such subscription, or no such delivery of it."),
                    "409": _error("A ping, or an attempt whose delivery is not kept."),
                    **_API_ERRORS,
                },
            }
        },
        f"{subscriptions}/{{id}}/replay": {
            "post": {
                "summary": "New deliveries of the events of a period that the subscription "
                "wants, in the order they happened (same webhook-ids as the first time).",
                "parameters": [_ID],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Replay"}}
                    },
                },
                "responses": {
                    "202": _json(
                        "WebhookQueued", "Queued; next_since is set when the limit was reached."
                    ),
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            }
        },
        f"{subscriptions}/{{id}}/ping": {
            "post": {
                "summary": "Send a ping event now, signed and posted as any webhook (on or "
                "off); answers what the receiver answered, and logs it.",
                "parameters": [_ID],
                "responses": {
                    "200": _json("WebhookPing", "What the receiver answered (ok or not)."),
                    "404": _error("No such subscription."),
                    **_API_ERRORS,
                },
            }
        },
    }


def event_schema_name(event: str) -> str:
    """``deal.created`` -> ``Event_deal_created``: the body of that event's webhook."""
    return "Event_" + event.replace(".", "_")


def _bounded_ids(node: Any, name: str = "") -> None:
    """An id property (``id``, ``*_id``) has the bounds of every id of the API."""
    if isinstance(node, list):
        for item in node:
            _bounded_ids(item, name)
        return
    if not isinstance(node, dict):
        return
    is_id = name == "id" or name.endswith("_id")
    if is_id and node.get("type") == "integer":
        node.update(minimum=MIN_ID, maximum=MAX_ID)
    for key, value in node.items():
        if key == "properties":
            for prop, schema in value.items():
                _bounded_ids(schema, prop)
        elif key in ("anyOf", "items"):
            _bounded_ids(value, name)
        else:
            _bounded_ids(value)


def event_schemas() -> dict[str, Any]:
    """``Event_<name>`` for every event (``type``, ``timestamp``, ``data``), the type of
    each one's data (``DealCreated``) and the snapshots they hold (``DealSnapshot``),
    made from the very types the emit sites build (:mod:`crm_core.event_types`)."""
    found: dict[str, Any] = {}
    for event, data_type in sorted(EVENT_DATA.items()):
        data = TypeAdapter(data_type).json_schema(ref_template=_REF, mode="serialization")
        found.update(data.pop("$defs", {}))
        found[data_type.__name__] = data
        found[event_schema_name(event)] = {
            "type": "object",
            "title": event,
            "description": f"The body of a {event} webhook (Standard Webhooks).",
            "required": ["type", "timestamp", "data"],
            "properties": {
                "type": {"const": event},
                "timestamp": {"type": "string", "format": "date-time"},
                "data": {"$ref": _REF.format(model=data_type.__name__)},
            },
        }
    _bounded_ids(found)
    return found


def webhooks() -> dict[str, Any]:
    """The OpenAPI 3.1 ``webhooks``: what a subscriber of each event is POSTed."""
    return {
        event: {
            "post": {
                "summary": f"{event}: the ids, and the object as it was then.",
                "description": "Signed per Standard Webhooks (webhook-id, webhook-timestamp, "
                "webhook-signature); retried until a 2xx; deduplicate by webhook-id.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": _REF.format(model=event_schema_name(event))}
                        }
                    },
                },
                "responses": {"2XX": {"description": "Received; not sent again."}},
            }
        }
        for event in sorted(EVENT_DATA)
    }


def schemas() -> dict[str, Any]:
    return {
        **event_schemas(),
        "SubscriptionIn": SubscriptionIn.model_json_schema(ref_template=_REF),
        "SubscriptionPatch": SubscriptionPatch.model_json_schema(ref_template=_REF),
        "WebhookSubscription": {
            "type": "object",
            "required": ["id", "url", "events", "active", "failure_count"],
            "properties": {
                "id": id_schema(),
                "url": {"type": "string"},
                "events": {"type": "array", "items": {"type": "string"}},
                "description": {"type": "string"},
                "active": {"type": "boolean"},
                "failure_count": {"type": "integer"},
                "failing_since": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "The first failure of the current streak.",
                },
                "disabled_reason": {"type": ["string", "null"]},
                "waiting_deliveries": {
                    "type": "integer",
                    "description": "Deliveries not yet done: waiting, or retrying.",
                },
                "secret": {"type": "string", "description": "Only when generated, only once."},
            },
        },
        "Replay": Replay.model_json_schema(ref_template=_REF),
        "WebhookQueued": {
            "type": "object",
            "required": ["queued", "webhook_id", "next_since"],
            "properties": {
                "queued": {"type": "integer", "description": "New deliveries written."},
                "webhook_id": {"type": ["string", "null"]},
                "next_since": {
                    "type": ["string", "null"],
                    "format": "date-time",
                    "description": "Where a replay that reached its limit stopped.",
                },
            },
        },
        "WebhookPing": {
            "type": "object",
            "required": ["ok", "status_code", "error", "duration_ms", "webhook_id"],
            "properties": {
                "ok": {"type": "boolean"},
                "status_code": {"type": ["integer", "null"]},
                "error": {"type": ["string", "null"]},
                "duration_ms": {"type": "integer"},
                "webhook_id": {"type": "string"},
            },
        },
    }
