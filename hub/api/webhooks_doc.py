"""The OpenAPI paths of the inbound hooks (``/hooks/...``) and the webhook admin API."""

from __future__ import annotations

from typing import Any

from hub.api.ids import cursor_schema, id_schema
from hub.api.webhooks import SubscriptionIn, SubscriptionPatch
from webhooks.sources import KINDS

_REF = "#/components/schemas/{model}"


def _json(schema: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


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
        responses["502"] = _error("The Graph API did not give the lead; Meta retries.")
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
            "patch": {
                "summary": "Change a subscription; active=true re-enables a disabled one.",
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
    }


def schemas() -> dict[str, Any]:
    return {
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
                "disabled_reason": {"type": ["string", "null"]},
                "secret": {"type": "string", "description": "Only when generated, only once."},
            },
        },
    }
