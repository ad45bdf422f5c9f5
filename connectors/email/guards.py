"""Mail that is no client writing to us: auto-replies, bounces, our own mail."""

from __future__ import annotations

import re
from email.message import EmailMessage

_NO_REPLY_LOCALS = {"mailer-daemon", "postmaster"}
_BULK = {"bulk", "junk", "list", "auto_reply"}
_RECIPIENT = re.compile(r"^\s*(final|original)-recipient\s*:\s*[^;]*;\s*(\S+)", re.I | re.M)
_ACTION = re.compile(r"^\s*action\s*:\s*(\S+)", re.I | re.M)


def is_auto_reply(message: EmailMessage) -> bool:
    auto = str(message.get("Auto-Submitted", "") or "").strip().lower()
    if auto and auto != "no":
        return True
    if message.get("X-Autoreply") is not None or message.get("X-Autorespond") is not None:
        return True
    precedence = str(message.get("Precedence", "") or "").strip().lower()
    return precedence in _BULK


def is_bounce(message: EmailMessage, sender: str | None) -> bool:
    if message.get_content_type() == "multipart/report":
        return True
    local = (sender or "").split("@", 1)[0].lower()
    return local in _NO_REPLY_LOCALS


def failed_recipients(message: EmailMessage) -> tuple[str, ...]:
    """The addresses a bounce says could not be reached."""
    found: list[str] = []
    header = message.get("X-Failed-Recipients")
    if header:
        found += [a.strip() for a in str(header).split(",") if "@" in a]
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _status_blocks(part):
            action = _ACTION.search(block)
            if action and action.group(1).lower() != "failed":
                continue
            for match in _RECIPIENT.finditer(block):
                found.append(match.group(2).strip("<>"))
    unique: list[str] = []
    for address in found:
        if address.lower() not in unique and "@" in address:
            unique.append(address.lower())
    return tuple(unique)


def _status_blocks(part: EmailMessage) -> list[str]:
    payload = part.get_payload()
    if isinstance(payload, list):  # the package parses per-recipient fields as messages
        return [
            "\n".join(f"{k}: {v}" for k, v in sub.items())
            for sub in payload
            if not isinstance(sub, str)
        ]
    raw = part.get_payload(decode=True)
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
    return text.split("\n\n")
