"""Pieces every OpenAPI module builds its paths from."""

from __future__ import annotations

from typing import Any


def json_content(schema: str, description: str) -> dict[str, Any]:
    """A response (or body) of the JSON schema named ``schema`` in the components."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
    }


def query_param(
    name: str, schema: dict[str, Any], description: str | None = None
) -> dict[str, Any]:
    """An optional query parameter."""
    if description is None:
        return {"name": name, "in": "query", "schema": schema}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }
