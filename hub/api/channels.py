"""``GET /api/v1/channels`` (admins and heads of sales): every configured channel account
and its health: state, last item, last error, backlog, parked items, failure streak.

The loops' states come from this process's registry (:mod:`hub.health`); the backlog,
parked items, refused hook requests and the outbound webhook subscriptions from the
database. No secret is ever shown: errors are stored without the account's secrets, and
a subscription's URL is shown without its user, password, query or fragment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from crm_core import rejected_hooks
from crm_core.enums import OutboxStatus
from crm_core.models import ParkedItem, WebhookDelivery, WebhookSubscription
from crm_core.replies import SEND_TOPIC_PREFIX
from crm_core.tables import outbox
from crm_core.webhook_subscriptions import waiting_counts
from hub.api import parked
from hub.api.auth import VIEWER
from hub.api.errors import ApiError
from hub.health import (
    ALERT_AFTER,
    CONNECTED,
    DISABLED,
    FAILING,
    FAILING_STREAK,
    HEALTH,
    RETRYING,
    STATES,
    AccountHealth,
)
from hub.hooks import HOOKS
from hub.keys import CLOCK, DATABASE, SETTINGS
from webhooks.sources import KINDS

routes = web.RouteTableDef()
PATH = "/api/v1/channels"
UNKNOWN = "unknown"  # configured, but its loop does not run in this process
CHANNELS = ("telegram", "email", "sip", "webhook", "subscription")
_HOOK_CHANNELS = ("form", "ad_lead", "phone", "api")  # what hook sources' messages are
_SLUGS = {kind: slug for slug, kind in KINDS.items()}


@dataclass(frozen=True, slots=True)
class _Account:
    channel: str
    account: str
    kind: str | None  # the bot's mode, the hook source's kind
    parked_channel: str  # its name among the parked items
    sends: str | None  # the outbox topic of its sends, if it sends


@routes.get(PATH)
async def list_channels(request: web.Request) -> web.Response:
    if not request[VIEWER].sees_all:
        raise ApiError(403, "forbidden", "only an admin or a head of sales may see the channels")
    app = request.app
    now = app[CLOCK].now()
    accounts = _configured(app)
    stored = await app[DATABASE].read(lambda s: _stored(s, accounts))
    items = [_item(app, a, stored, now) for a in accounts]
    items += [_subscription(row, stored, now) for row in stored.subscriptions]
    return web.json_response({"channels": items, "alert": any(i["alert"] for i in items)})


def _configured(app: web.Application) -> list[_Account]:
    channels = app[SETTINGS].channels
    found: list[_Account] = []
    for channel, list_name, sends in (
        ("telegram", "bots", "telegram"),
        ("email", "mailboxes", "email"),
        ("sip", "lines", None),
        ("site_chat", "widgets", "site_chat"),
    ):
        table = channels.get(channel)
        rows = table.get(list_name) if isinstance(table, Mapping) else None
        for row in rows if isinstance(rows, list) else ():
            if isinstance(row, Mapping) and isinstance(row.get("key"), str):
                mode = row.get("mode")
                kind = mode if channel != "email" and isinstance(mode, str) else None
                if channel == "telegram" and kind is None:
                    kind = "polling"
                topic = None if sends is None else SEND_TOPIC_PREFIX + sends
                found.append(_Account(channel, row["key"], kind, channel, topic))
    for key, source in sorted(app[HOOKS].sources.items()):
        found.append(_Account("webhook", key, source.kind, source.kind, None))
    return found


@dataclass(slots=True)
class _Stored:
    parked: dict[tuple[str, str], int]
    backlog: dict[tuple[str, str], int]
    rejected: dict[tuple[str, str], tuple[str, datetime, int]]
    subscriptions: list[WebhookSubscription]
    waiting: dict[int, int]
    last_failures: dict[int, tuple[str, datetime]]


def _stored(session: Session, accounts: list[_Account]) -> _Stored:
    parked_counts = {
        (str(c), str(a)): int(n)
        for c, a, n in session.execute(
            select(ParkedItem.channel, ParkedItem.account, func.count()).group_by(
                ParkedItem.channel, ParkedItem.account
            )
        )
    }
    topics = sorted({a.sends for a in accounts if a.sends is not None})
    backlog: dict[tuple[str, str], int] = {}
    if topics:
        account = outbox.c.payload["channel_account"].as_string()
        for topic, key, n in session.execute(
            select(outbox.c.topic, account, func.count())
            .where(outbox.c.status == OutboxStatus.PENDING.value, outbox.c.topic.in_(topics))
            .group_by(outbox.c.topic, account)
        ):
            backlog[(str(topic), str(key))] = int(n)
    subscriptions = list(
        session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id))
    )
    ids = [s.id for s in subscriptions]
    last_failures: dict[int, tuple[str, datetime]] = {}
    for sub in subscriptions:
        if sub.failure_count == 0 and sub.last_failure_at is None:
            continue
        row = session.execute(
            select(WebhookDelivery.status_code, WebhookDelivery.error, WebhookDelivery.attempted_at)
            .where(WebhookDelivery.subscription_id == sub.id, WebhookDelivery.ok.is_(False))
            .order_by(WebhookDelivery.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            message = row.error or f"HTTP {row.status_code}"
            last_failures[sub.id] = (message[:500], row.attempted_at)
    session.expunge_all()
    return _Stored(
        parked_counts,
        backlog,
        rejected_hooks.latest(session),
        subscriptions,
        waiting_counts(session, ids) if ids else {},
        last_failures,
    )


def _item(
    app: web.Application, account: _Account, stored: _Stored, now: datetime
) -> dict[str, Any]:
    health = app[HEALTH]
    known = health.get(account.channel, account.account)
    if account.channel in ("webhook", "site_chat"):
        # a hook source waits for its peers' calls, a widget for visitors: ready when the
        # hub is up
        known = known or AccountHealth(account.channel, account.account, state=CONNECTED)
    state = known.state if known is not None else UNKNOWN
    last_item = health.last_item(_message_channel(account.channel), account.account)
    if account.channel == "webhook":
        seen = [health.last_item(c, account.account) for c in _HOOK_CHANNELS]
        last_item = max((s for s in seen if s is not None), default=None)
    error: dict[str, Any] | None = None
    if known is not None and known.last_error is not None and known.last_error_at is not None:
        error = {"message": known.last_error, "at": known.last_error_at.isoformat()}
    rejected = None
    if account.channel in ("webhook", "telegram"):
        slug = (
            _SLUGS.get(account.kind or "", account.kind)
            if account.channel == "webhook"
            else "telegram"
        )
        found = stored.rejected.get((slug or "", account.account))
        rejected = found[2] if found is not None else 0
        if found is not None and (error is None or found[1].isoformat() > error["at"]):
            error = {"message": found[0], "at": found[1].isoformat()}
    backlog = None
    if account.sends is not None:
        backlog = stored.backlog.get((account.sends, account.account), 0)
    return {
        "channel": account.channel,
        "account": account.account,
        "kind": account.kind,
        "state": state,
        "failing_since": _iso(known.failing_since if known is not None else None),
        "alert": known is not None and known.alert(now),
        "last_item_at": _iso(last_item),
        "last_error": error,
        "backlog": backlog,
        "parked": _parked(stored, account.parked_channel, account.account),
        "failure_streak": known.failures if known is not None else None,
        "rejected": rejected,
    }


def _subscription(sub: WebhookSubscription, stored: _Stored, now: datetime) -> dict[str, Any]:
    if not sub.active:
        state = DISABLED
    elif sub.failing_since is not None:
        state = FAILING if sub.failure_count >= FAILING_STREAK else RETRYING
    else:
        state = CONNECTED
    failure = stored.last_failures.get(sub.id)
    alert = (
        state == FAILING and sub.failing_since is not None and now - sub.failing_since > ALERT_AFTER
    )
    return {
        "channel": "subscription",
        "account": str(sub.id),
        "kind": _shown_url(sub.url),
        "state": state,
        "failing_since": _iso(sub.failing_since),
        "alert": alert,
        "last_item_at": _iso(sub.last_success_at),
        "last_error": None
        if failure is None
        else {"message": failure[0], "at": failure[1].isoformat()},
        "backlog": stored.waiting.get(sub.id, 0),
        "parked": {"count": 0, "url": None},
        "failure_streak": sub.failure_count,
        "rejected": None,
    }


def _parked(stored: _Stored, channel: str, account: str) -> dict[str, Any]:
    url = f"{parked.PATH}?channel={channel}" if channel in parked.CHANNELS else None
    return {"count": stored.parked.get((channel, account), 0), "url": url}


def _message_channel(channel: str) -> str:
    return {"sip": "phone"}.get(channel, channel)


def _shown_url(url: str) -> str:
    """Scheme, host, port and path: never a user, a password or a query's token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unreadable URL)"
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def down(app: web.Application) -> list[dict[str, Any]]:
    """Names and states of what is down, for ``GET /healthz?details=1`` (no secrets)."""
    found = app[HEALTH].down() if HEALTH in app else []

    def work(session: Session) -> list[tuple[int, bool, int]]:
        rows = session.execute(
            select(
                WebhookSubscription.id,
                WebhookSubscription.active,
                WebhookSubscription.failure_count,
            ).where(
                (WebhookSubscription.active.is_(False))
                | (WebhookSubscription.failing_since.is_not(None))
            )
        )
        return [(int(i), bool(a), int(n)) for i, a, n in rows]

    for sub_id, active, failures in await app[DATABASE].read(work):
        state = DISABLED if not active else (FAILING if failures >= FAILING_STREAK else RETRYING)
        found.append({"channel": "subscription", "account": str(sub_id), "state": state})
    return found


# -- the OpenAPI entries ------------------------------------------------------------------


def schemas() -> dict[str, Any]:
    when = {"type": "string", "format": "date-time"}
    maybe_when = {"anyOf": [when, {"type": "null"}]}
    return {
        "ChannelHealth": {
            "type": "object",
            "required": [
                "channel",
                "account",
                "kind",
                "state",
                "failing_since",
                "alert",
                "last_item_at",
                "last_error",
                "backlog",
                "parked",
                "failure_streak",
                "rejected",
            ],
            "properties": {
                "channel": {"type": "string", "enum": list(CHANNELS)},
                "account": {
                    "type": "string",
                    "description": "The bot's, mailbox's, line's or source's key; a "
                    "subscription's id",
                },
                "kind": {
                    "anyOf": [{"type": "string"}, {"type": "null"}],
                    "description": "A bot's mode, a line's mode, a hook source's kind, a "
                    "subscription's URL (without user, password or query)",
                },
                "state": {
                    "type": "string",
                    "enum": [*STATES, UNKNOWN],
                    "description": "connected; retrying (after a failure); failing (failures "
                    "in a row, or for a minute); disabled; starting (not reported yet); "
                    "unknown (its loop runs in another process)",
                },
                "failing_since": {
                    **maybe_when,
                    "description": "When the current run of failures began",
                },
                "alert": {
                    "type": "boolean",
                    "description": "Failing for more than 5 minutes",
                },
                "last_item_at": {
                    **maybe_when,
                    "description": "The last item received (seen by this process); for a "
                    "subscription, the last delivery that went through",
                },
                "last_error": {
                    "anyOf": [
                        {
                            "type": "object",
                            "required": ["message", "at"],
                            "properties": {"message": {"type": "string"}, "at": when},
                        },
                        {"type": "null"},
                    ],
                    "description": "Never holds a secret",
                },
                "backlog": {
                    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                    "description": "Sends pending in the outbox for this account; a "
                    "subscription's deliveries waiting; null where unknown",
                },
                "parked": {
                    "type": "object",
                    "required": ["count", "url"],
                    "properties": {
                        "count": {"type": "integer", "minimum": 0},
                        "url": {
                            "anyOf": [{"type": "string"}, {"type": "null"}],
                            "description": "GET /api/v1/parked?channel=..., where it lists them",
                        },
                    },
                },
                "failure_streak": {
                    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                    "description": "Failures in a row",
                },
                "rejected": {
                    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}],
                    "description": "Refused requests at /hooks/... (kept rows' counts)",
                },
            },
        },
        "ChannelHealthList": {
            "type": "object",
            "required": ["channels", "alert"],
            "properties": {
                "channels": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/ChannelHealth"},
                },
                "alert": {
                    "type": "boolean",
                    "description": "Some channel has been failing for more than 5 minutes",
                },
            },
        },
    }


def paths() -> dict[str, Any]:
    def json(schema: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }

    return {
        PATH: {
            "get": {
                "summary": "Every configured channel account and its health (admins and "
                "heads of sales).",
                "responses": {
                    "200": json("ChannelHealthList", "The accounts, then the subscriptions."),
                    "403": json("Error", "A manager may not."),
                },
            }
        }
    }
