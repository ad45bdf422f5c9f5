"""What text the hub stores: any Unicode except NUL and lone surrogates.

PostgreSQL refuses both (a ``text`` value cannot hold U+0000, and UTF-8 cannot encode
a surrogate), SQLite takes them: so one rule, for both databases, decides at the edge.
The API refuses such text with a 400 naming the field (:func:`first_problem`); what a
channel brings in (a mail, a form, a bot update) is kept, with each such character
replaced by U+FFFD (:func:`scrubbed`), because a client's message is never refused
for one bad character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, is_dataclass, replace
from typing import Any, TypeVar

Value = TypeVar("Value")

REPLACEMENT = "\ufffd"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a NUL character" if char == "\x00" else "a lone surrogate"
    return f"contains {what} (U+{ord(char):04X}) at position {found.start()}"


def scrubbed(value: str) -> str:
    """``value`` with every character that cannot be stored replaced by U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT, value)


def first_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first ``(field path, problem)`` in a JSON-like value (keys included), or None.

    Paths read like the API's validation errors: ``sender.identities[0].value``.
    """
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else (path, problem)
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and (problem := text_problem(key)) is not None:
                return (where, f"the name {problem}")
            found = first_problem(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def storable(value: Value) -> Value:
    """``value`` (a contract's dataclass, a tuple, a mapping, text) with its unstorable
    characters replaced (:func:`scrubbed`); the same object when there were none."""
    result: Any = value
    if isinstance(value, str):
        if _UNSTORABLE.search(value) is not None:
            result = scrubbed(value)
    elif is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for item in fields(value):
            if item.init:
                old = getattr(value, item.name)
                new = storable(old)
                if new is not old:
                    changes[item.name] = new
        if changes:
            result = replace(value, **changes)
    elif isinstance(value, tuple | list):
        items = [storable(item) for item in value]
        if any(new is not old for new, old in zip(items, value, strict=True)):
            result = type(value)(items)
    elif isinstance(value, Mapping):
        pairs = [(storable(key), storable(item)) for key, item in value.items()]
        old_pairs = value.items()
        if any(new != old for new, old in zip(pairs, old_pairs, strict=True)):
            result = dict(pairs)
    return result  # type: ignore[no-any-return]
