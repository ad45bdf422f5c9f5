"""The filters of ``GET /api/v1/contacts`` and ``GET /api/v1/deals`` from the query string
(what each one means: ``crm_core.list_filters``). A wrong or empty value is a 400 that
names the parameter."""

from __future__ import annotations

from aiohttp import web

from crm_core.enums import Channel
from crm_core.list_filters import ContactFilter, Created, DealFilter
from hub.api.ids import query_id
from hub.api.query_params import bad_query, query_amount, query_since, query_text, query_until
from hub.keys import SETTINGS

CHANNELS = frozenset(c.value for c in Channel)
UNOWNED = "none"  # owner_id=none: nobody's
ACCOUNT_LONGEST = 120  # a channel account's key (ChannelAccount.key, Touch.channel_account)
UTM_LONGEST = 200
CODE_LONGEST = 64  # a funnel's or a stage's code


def contact_filter(request: web.Request) -> ContactFilter:
    owner_id, unowned = _owner(request)
    return ContactFilter(
        owner_id=owner_id,
        unowned=unowned,
        created=_created(request),
        channel=None if (channel := _channel(request, "channel")) is None else Channel(channel),
    )


def deal_filter(request: web.Request) -> DealFilter:
    owner_id, unowned = _owner(request)
    low, high = query_amount(request, "amount_min"), query_amount(request, "amount_max")
    if low is not None and high is not None and high < low:
        raise bad_query("amount_max", "less than amount_min")
    channel, account = _source(request)
    return DealFilter(
        owner_id=owner_id,
        unowned=unowned,
        created=_created(request),
        amount_min=low,
        amount_max=high,
        source_channel=channel,
        source_account=account,
        utm_source=query_text(request, "utm_source", UTM_LONGEST),
    )


def funnel_and_stage(request: web.Request) -> tuple[str | None, str | None]:
    return query_text(request, "funnel", CODE_LONGEST), query_text(request, "stage", CODE_LONGEST)


def _owner(request: web.Request) -> tuple[int | None, bool]:
    if request.query.get("owner_id") == UNOWNED:
        return None, True
    return query_id(request, "owner_id"), False


def _created(request: web.Request) -> Created:
    zone = request.app[SETTINGS].timezone
    start = query_since(request, "created_from", zone)
    end = query_until(request, "created_to", zone)
    if start is not None and end is not None and end <= start:
        raise bad_query("created_to", "the period ends before it starts")
    return Created(start, end)


def _channel(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in CHANNELS:
        raise bad_query(name, f"one of {', '.join(sorted(CHANNELS))}")
    return raw


def _source(request: web.Request) -> tuple[str | None, str | None]:
    """``source=form`` (a channel) or ``source=form:landing-pg`` (a channel's door)."""
    raw = request.query.get("source")
    if raw is None:
        return None, None
    channel, colon, account = raw.partition(":")
    if channel not in CHANNELS or (colon and not 0 < len(account) <= ACCOUNT_LONGEST):
        raise bad_query(
            "source",
            f"a channel ({', '.join(sorted(CHANNELS))}), or a channel and its account's "
            "key like form:landing-pg",
        )
    return channel, account if colon else None
