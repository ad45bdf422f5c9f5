"""Tracking numbers: phone numbers printed in one campaign each, so that a call to one is
a touch of that campaign (a PBX or a SIP line gives the called number, never UTM tags).

The table comes from the hub's settings (``[tracking_numbers]``), keyed by number in any
form people write it; it is checked once at start and kept keyed by E.164 with the
default region. :func:`tracked` gives an inbound call its number's attribution.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from crm_core.contracts import Attribution, InboundMessage
from crm_core.enums import Direction
from crm_core.identities import InvalidIdentityError, normalize_phone

# What an entry may set: the tags a campaign's link would carry.
KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_URI = re.compile(r"(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)


class TrackingConfigError(ValueError):
    """The tracking numbers table cannot be used; the message names the entry."""


def tracking_table(raw: Mapping[str, Any], default_region: str) -> dict[str, Attribution]:
    """E.164 number -> the attribution of its campaign; raises :class:`TrackingConfigError`."""
    table: dict[str, Attribution] = {}
    for number, entry in raw.items():
        where = f"tracking_numbers.{number!r}"
        try:
            key = normalize_phone(str(number), default_region)
        except InvalidIdentityError as exc:
            raise TrackingConfigError(f"{where}: {exc.reason}") from None
        if not isinstance(entry, Mapping):
            raise TrackingConfigError(f"{where}: expected a table of UTM tags, e.g. utm_source")
        tags: dict[str, str] = {}
        for name, value in entry.items():
            if name not in KEYS:
                raise TrackingConfigError(f"{where}.{name}: unknown (known: {', '.join(KEYS)})")
            if not isinstance(value, str) or not value.strip():
                raise TrackingConfigError(f"{where}.{name}: expected a non-empty string")
            tags[name] = value.strip()[:200]
        if not tags:
            raise TrackingConfigError(f"{where}: name at least one UTM tag")
        if key in table:
            raise TrackingConfigError(f"{where}: {key} is in the table twice")
        table[key] = Attribution(**tags)
    return table


def callee_number(callee: str) -> str:
    """The number part of what a line calls the callee: ``<sip:7495...@host>`` -> ``7495...``."""
    found = _URI.search(callee)
    return found.group(1) if found else callee.strip()


def tracked(
    message: InboundMessage, table: Mapping[str, Attribution], default_region: str
) -> InboundMessage:
    """An inbound call to a tracking number, with that number's attribution when the
    line or PBX gave none; any other message as it is."""
    call = message.call
    if (
        not table
        or call is None
        or call.direction is not Direction.INBOUND
        or not message.attribution.is_empty()
    ):
        return message
    try:
        number = normalize_phone(callee_number(call.callee)[:64], default_region)
    except InvalidIdentityError:
        return message
    attribution = table.get(number)
    if attribution is None:
        return message
    return replace(message, attribution=attribution)
