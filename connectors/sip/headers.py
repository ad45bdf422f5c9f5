"""Reading the caller from a raw SIP request (pure: unit-tested without pjsua2)."""

from __future__ import annotations

import re

_URI = re.compile(r"<?\s*(?:sips?|tel):([^@;>\s]+)", re.IGNORECASE)
_NAMES = {
    "p-asserted-identity": "p-asserted-identity",
    "from": "from",
    "f": "from",
    "call-id": "call-id",
    "i": "call-id",
}


def header_values(message: str) -> dict[str, str]:
    """The first value of the headers this module reads, by lower-case full name."""
    found: dict[str, str] = {}
    head = message.split("\r\n\r\n", 1)[0].split("\n\n", 1)[0]
    for line in head.splitlines()[1:]:
        name, sep, value = line.partition(":")
        if not sep:
            continue
        full = _NAMES.get(name.strip().lower())
        if full is not None and full not in found:
            found[full] = value.strip()
    return found


def caller_number(message: str) -> str | None:
    """The caller's user part: P-Asserted-Identity first (a trunk vouches for it), then From."""
    values = header_values(message)
    for name in ("p-asserted-identity", "from"):
        value = values.get(name)
        if value:
            match = _URI.search(value)
            if match:
                return match.group(1)
    return None


def user_of(uri: str) -> str:
    """``sip:+7916...@host`` → ``+7916...``; anything else as it is."""
    match = _URI.search(uri)
    return match.group(1) if match else uri
