"""Every id the OpenAPI document shows (path, query, body, response) has the bounds the API
enforces, taken from the one definition in ``hub.api.ids``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from hub.api.ids import MAX_ID, MIN_ID, cursor_schema, id_schema
from hub.api.openapi import document


def _is_id(name: str) -> bool:
    return name == "id" or name.endswith("_id") or name in {"before", "next_after"}


def _parameters() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            for parameter in operation.get("parameters", []):
                yield f"{method} {path} {parameter['name']}", parameter


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (where, name, schema) of an object property, however deep."""
    if isinstance(node, dict):
        for name, schema in (node.get("properties") or {}).items():
            yield f"{where}.{name}", name, schema
        for key, value in node.items():
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for value in node:
            yield from _properties(value, where)


def _bounds(schema: dict[str, Any]) -> set[tuple[Any, Any]]:
    """(minimum, maximum) of the integer branches of a schema (``anyOf`` with null, arrays)."""
    if "items" in schema:
        return _bounds(schema["items"])
    branches = schema.get("anyOf", [schema])
    return {
        (b.get("minimum"), b.get("maximum"))
        for b in branches
        if b.get("type") == "integer" or "integer" in (b.get("type") or [])
    }


def test_the_definition_is_one_to_2_62() -> None:
    assert (MIN_ID, MAX_ID) == (1, 2**62 - 1)
    assert id_schema() == {"type": "integer", "minimum": 1, "maximum": 2**62 - 1}
    assert cursor_schema() == {"type": "integer", "minimum": 0, "maximum": 2**62 - 1}


def test_every_id_parameter_has_the_id_bounds() -> None:
    checked = 0
    for where, parameter in _parameters():
        name = parameter["name"]
        if name == "after":
            assert parameter["schema"] == cursor_schema(), where
        elif _is_id(name):
            # an id, or a word for none at all (owner_id=none: nobody's)
            branches = parameter["schema"].get("anyOf", [parameter["schema"]])
            assert branches[0] == id_schema(), where
            assert all(set(b) == {"type", "enum"} for b in branches[1:]), where
        else:
            continue
        checked += 1
    assert checked > 30


def test_every_id_property_has_the_id_bounds() -> None:
    found = {
        where: _bounds(schema)
        for where, name, schema in _properties(document()["components"]["schemas"])
        if _is_id(name) or name.endswith("_ids")
    }
    assert {"/NewTask.assignee_id", "/Assignment.manager_id", "/NewCall.contact_id"} <= set(found)
    wrong = {w: bounds for w, bounds in found.items() if bounds and bounds != {(MIN_ID, MAX_ID)}}
    assert wrong == {}  # (an id that is not an integer, external_id, is the peer's text)
