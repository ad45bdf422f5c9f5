"""Threading by the headers mail programs keep, and by our conversation token.

Never by subject alone: a subject is only read for the token the hub put there.
"""

from __future__ import annotations

import re

_ID = re.compile(r"<([^<>\s]+)>")
_TOKEN = re.compile(r"\[#C(\d{1,12})\]")
_RE = re.compile(r"^\s*((re|fwd?|aw|wg|ответ|отв|на)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)


def normalize_message_id(value: str | None) -> str | None:
    """``<abc@host>`` (or a bare id) as the bare id we store; None when there is none."""
    if not value:
        return None
    found = _ID.search(value)
    bare = found.group(1) if found else value.strip().strip("<>").strip()
    return bare or None


def message_ids(value: str | None) -> list[str]:
    """All ids in an In-Reply-To or References header, in header order."""
    if not value:
        return []
    found = _ID.findall(value)
    if found:
        return found
    return [v for v in (normalize_message_id(p) for p in value.split()) if v]


def thread_refs(in_reply_to: str | None, references: str | None) -> tuple[str, ...]:
    """In-Reply-To first, then References newest first, without repeats."""
    refs: list[str] = []
    for ref in [*message_ids(in_reply_to), *reversed(message_ids(references))]:
        if ref not in refs:
            refs.append(ref)
    return tuple(refs[:50])


def conversation_token(conversation_id: int) -> str:
    return f"[#C{conversation_id}]"


def conversation_hint(subject: str) -> int | None:
    found = _TOKEN.search(subject)
    return int(found.group(1)) if found else None


def reply_subject(original: str | None, conversation_id: int) -> str:
    """``Re: <original>`` with one ``Re:`` and our conversation token."""
    base = _RE.sub("", original or "").strip()
    token = conversation_token(conversation_id)
    if token not in base:
        base = f"{base} {token}".strip()
    return f"Re: {base}"
