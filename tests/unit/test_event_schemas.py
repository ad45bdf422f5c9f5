"""Every event the core emits is known, documented by a schema made from the types the emit
sites build, and a payload built from those types validates against it."""

from __future__ import annotations

import ast
import copy
import json
import types
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import jsonschema_rs
import pytest

import crm_core
from crm_core import snapshots
from crm_core.event_types import EVENT_DATA
from crm_core.journal import Journal
from crm_core.snapshots import Snapshot
from crm_core.webhook_subscriptions import KNOWN_EVENTS, event_body
from hub.api.openapi import document
from hub.api.webhooks_doc import event_schema_name

WHEN = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
_EMITTERS = {"emit", "recorded_and_emitted"}
_PACKAGES = ("crm_core", "hub", "connectors", "webhooks", "routing")


def strict_validator(event: str) -> jsonschema_rs.Draft202012Validator:
    """The event's documented schema, with no property it does not name (so a field an
    emit site sends and the type does not declare fails)."""
    components = copy.deepcopy(document()["components"]["schemas"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node:
                node.setdefault("additionalProperties", False)
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(components)
    root = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": f"#/components/schemas/{event_schema_name(event)}",
        "components": {"schemas": components},
    }
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def _names_in(node: ast.AST) -> set[str]:
    return {
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and "." in n.value
    }


def emitted_names() -> set[str]:
    """Every event name an emit site passes (in any package of the hub)."""
    return {name for names, _about in emit_sites() for name in names}


def emit_sites() -> list[tuple[set[str], bool]]:
    """Each emit site: the event names it may pass (a literal, or the literals a variable
    of the same function is assigned: ``"deal.won" if ... else ...``), and whether it
    passes a snapshot (``about=``)."""
    found: list[tuple[set[str], bool]] = []
    root = Path(crm_core.__file__).parent.parent
    paths = [p for package in _PACKAGES for p in sorted((root / package).rglob("*.py"))]
    assert len(paths) > 50
    for path in paths:
        if path.name == "journal.py":  # the emitter itself: its names are parameters
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr in _EMITTERS
                    and call.args
                ):
                    continue
                first = call.args[0]
                names = _names_in(first)
                if isinstance(first, ast.Name):
                    for assign in ast.walk(function):
                        if isinstance(assign, ast.Assign) and any(
                            isinstance(t, ast.Name) and t.id == first.id for t in assign.targets
                        ):
                            names |= _names_in(assign.value)
                assert names, f"{path.name}:{call.lineno}: an event name not found"
                found.append((names, any(k.arg == "about" for k in call.keywords)))
    return found


def _snapshot_key(event: str) -> str | None:
    for name, hint in get_type_hints(EVENT_DATA[event]).items():
        if isinstance(hint, type) and issubclass(hint, Snapshot):
            return name
    return None


def test_every_site_of_an_event_with_an_object_sends_its_snapshot() -> None:
    for names, about in emit_sites():
        for name in names:
            assert about == (_snapshot_key(name) is not None), name


def test_every_emitted_event_is_known_and_every_known_one_is_emitted() -> None:
    emitted = emitted_names()
    assert {"deal.won", "deal.lost", "call.missed", "call.ended"} <= emitted
    assert emitted - KNOWN_EVENTS == set()
    assert KNOWN_EVENTS - emitted == set()


def test_every_known_event_has_a_schema_and_a_webhook_entry() -> None:
    doc = document()
    schemas = doc["components"]["schemas"]
    for event in KNOWN_EVENTS:
        schema = schemas[event_schema_name(event)]
        assert schema["properties"]["type"] == {"const": event}
        data = schema["properties"]["data"]["$ref"].rsplit("/", 1)[1]
        assert data == EVENT_DATA[event].__name__
        assert data in schemas
        body = doc["webhooks"][event]["post"]["requestBody"]["content"]["application/json"]
        assert body["schema"]["$ref"].endswith(event_schema_name(event))
    assert "deal" in schemas["DealCreated"]["properties"]
    assert {"title", "funnel", "stage", "amount", "currency", "attribution"} <= set(
        schemas["DealSnapshot"]["properties"]
    )


def test_a_snapshot_sits_under_its_own_key() -> None:
    for event, data_type in EVENT_DATA.items():
        for name, hint in get_type_hints(data_type).items():
            if isinstance(hint, type) and issubclass(hint, Snapshot):
                assert name == hint.KEY, (event, name, hint)


def _samples(hint: Any) -> list[Any]:
    """Values of a type: each branch of a union, one of anything else."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return [v for arg in get_args(hint) for v in _samples(arg)]
    if hint is type(None):
        return [None]
    if origin in (list, tuple):
        return [[_samples(get_args(hint)[0])[0]]]
    if isinstance(hint, type) and is_dataclass(hint):
        return [_snapshot(hint)]
    if isinstance(hint, type) and hasattr(hint, "__required_keys__"):  # a TypedDict
        return [{k: _samples(v)[0] for k, v in get_type_hints(hint).items()}]
    return [{int: 7, str: "Анна <b>&</b>", bool: True, datetime: WHEN}[hint]]


def _snapshot(kind: type[Any]) -> Any:
    hints = get_type_hints(kind, vars(snapshots))
    values = {}
    for f in fields(kind):
        value = _samples(hints[f.name])[0]
        values[f.name] = tuple(value) if isinstance(value, list) else value
    return kind(**values)


@pytest.mark.parametrize("event", sorted(KNOWN_EVENTS))
def test_a_payload_of_the_declared_types_validates(event: str) -> None:
    data_type = EVENT_DATA[event]
    hints = get_type_hints(data_type)
    optional = data_type.__optional_keys__
    # each field as its first sample, then each field in turn as each of its samples
    base = {k: _samples(v)[0] for k, v in hints.items() if k not in optional}
    variants = [base, {**base, **{k: _samples(hints[k])[0] for k in optional}}]
    for name, hint in hints.items():
        variants += [{**base, name: value} for value in _samples(hint)[1:]]
    validator = strict_validator(event)
    for variant in variants:
        snapshot = next((v for v in variant.values() if isinstance(v, Snapshot)), None)
        ids = {k: v for k, v in variant.items() if not isinstance(v, Snapshot)}
        journal = Journal("test", WHEN)
        journal.emit(event, 1, ids, about=snapshot)
        body = json.loads(event_body(event, journal.events[0]["payload"]))
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], (event, body)
        if snapshot is not None:
            assert body["data"][snapshot.KEY] == snapshot.json()


def test_a_field_the_type_does_not_declare_fails_the_strict_check() -> None:
    journal = Journal("test", WHEN)
    journal.emit("routing.changed", 1, {"version": 3, "secret": "x"})
    body = json.loads(event_body("routing.changed", journal.events[0]["payload"]))
    assert not strict_validator("routing.changed").is_valid(body)


def test_no_snapshot_holds_a_secret() -> None:
    for kind in vars(snapshots).values():
        if isinstance(kind, type) and issubclass(kind, Snapshot) and kind is not Snapshot:
            for f in fields(kind):  # type: ignore[arg-type]
                assert not {"secret", "hash", "password", "token"} & set(f.name.split("_"))
