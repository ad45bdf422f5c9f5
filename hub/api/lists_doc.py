"""The OpenAPI parameters of the contacts and deals lists' filters (``hub.api.list_filters``;
what each filter means: ``crm_core.list_filters``)."""

from __future__ import annotations

from typing import Any

from hub.api.doc_parts import query_param as _query
from hub.api.ids import id_schema
from hub.api.list_filters import (
    ACCOUNT_LONGEST,
    CHANNELS,
    CODE_LONGEST,
    UNOWNED,
    UTM_LONGEST,
)
from hub.api.query_params import AMOUNT_PATTERN


def _text(longest: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": longest}


_MOMENT = {"type": "string", "anyOf": [{"format": "date"}, {"format": "date-time"}]}
_SPAN = (
    "A date is a whole day in the company's time zone (the `timezone` setting); a "
    "date-time needs its offset (Z, or +03:00 written %2B03:00 in a URL)."
)


def _common(what: str) -> list[dict[str, Any]]:
    return [
        _query(
            "owner_id",
            {"anyOf": [id_schema(), {"type": "string", "enum": [UNOWNED]}]},
            f"Only the {what} this manager owns; `none`: the {what} nobody owns. Within "
            "what the caller may see: a manager filtering by a colleague gets only what "
            "their role already shows them.",
        ),
        _query(
            "created_from",
            _MOMENT,
            f"Only {what} created on this day or later (or at this moment or later). {_SPAN}",
        ),
        _query(
            "created_to",
            _MOMENT,
            f"Only {what} created on this day or earlier (or at this moment or earlier).",
        ),
    ]


CONTACT_FILTERS: list[dict[str, Any]] = [
    *_common("contacts"),
    _query(
        "channel",
        {"type": "string", "enum": sorted(CHANNELS)},
        "Only contacts who wrote or called through this channel (a conversation in it) or "
        "whom it can reach (an identity of its kind: a phone number for phone, an email "
        "address for email, a Telegram id for telegram, a site visitor id for site_chat).",
    ),
]
"""The contacts list's filters (the paging parameters are apart)."""

DEAL_FILTERS: list[dict[str, Any]] = [
    _query("funnel", _text(CODE_LONGEST), "Only deals in this funnel (its code)."),
    _query("stage", _text(CODE_LONGEST), "Only deals at this stage (its code)."),
    _query("contact_id", id_schema(), "Only this contact's deals."),
    *_common("deals"),
    _query(
        "amount_min",
        {"type": "string", "pattern": AMOUNT_PATTERN},
        "Only deals of this amount or more (a decimal like 1500.50); a deal without an "
        "amount matches no amount bound. Currencies are not converted.",
    ),
    _query(
        "amount_max",
        {"type": "string", "pattern": AMOUNT_PATTERN},
        "Only deals of this amount or less.",
    ),
    _query(
        "source",
        _text(len(max(CHANNELS, key=len)) + 1 + ACCOUNT_LONGEST),
        "Where the deal came from: the channel of the touch that opened it (form), or the "
        "channel and its door, the account's key (form:landing-pg), as the sources report "
        "names a source. A deal opened with no touch matches no source.",
    ),
    _query(
        "utm_source",
        _text(UTM_LONGEST),
        "Only deals whose opening touch carried this utm_source.",
    ),
]
"""The deals list's filters (the paging parameters are apart)."""
