"""What an id is, said once: its bounds, its pydantic type for bodies, the parsers of an id
in a path or a query, and the schema the OpenAPI document shows for it.

The columns are 64-bit (``crm_core.models.base.Id``); the API takes 1..2**62 - 1, so an id
it accepts always fits, and one it refuses is a 400 that names the parameter. An id in range
that names nothing is the handler's 404.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import Field, TypeAdapter, ValidationError

from hub.api.errors import ApiError

MIN_ID = 1
MAX_ID = 2**62 - 1

Id = Annotated[int, Field(ge=MIN_ID, le=MAX_ID)]
"""An id in a body: ``contact_id: Id`` or ``manager_id: Id | None = None``."""
Cursor = Annotated[int, Field(ge=0, le=MAX_ID)]
"""A keyset position (``after``): an id, or 0 for the start."""

_ID = TypeAdapter(Id)
_CURSOR = TypeAdapter(Cursor)
_INTEGER = re.compile(r"-?[0-9]+")
_LONGEST = 4000  # int() refuses a string of over 4300 digits; this many is out of range


def id_schema() -> dict[str, Any]:
    """The JSON schema of an id (``{"type": "integer", "minimum": 1, "maximum": ...}``)."""
    return _ID.json_schema()


def nullable_id_schema() -> dict[str, Any]:
    """An id or null (``deal_id`` of an ingest that opened no deal)."""
    return {**id_schema(), "type": ["integer", "null"]}


def cursor_schema() -> dict[str, Any]:
    return _CURSOR.json_schema()


def path_id(request: web.Request, name: str = "id") -> int:
    """The id in the path's ``{name}``; a 400 naming it when it is not an id."""
    return _parse(request.match_info[name], name, "invalid_path", _ID)


def query_id(request: web.Request, name: str) -> int | None:
    """The id in the query parameter ``name``, None when it is absent."""
    raw = request.query.get(name)
    return None if raw is None else _parse(raw, name, "invalid_query", _ID)


def query_cursor(request: web.Request, name: str = "after") -> int:
    """A keyset position from the query (0 when absent)."""
    raw = request.query.get(name)
    return 0 if raw is None else _parse(raw, name, "invalid_query", _CURSOR)


def _parse(raw: str, name: str, error: str, adapter: TypeAdapter[int]) -> int:
    if not _INTEGER.fullmatch(raw):
        shown = raw if len(raw) <= 40 else f"{raw[:40]}..."
        raise _invalid(error, name, f"expected an integer, got {shown!r}")
    value = int(raw) if len(raw) <= _LONGEST else (-1 if raw[0] == "-" else MAX_ID + 1)
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise _invalid(error, name, exc.errors(include_url=False)[0]["msg"]) from None


def _invalid(error: str, name: str, message: str) -> ApiError:
    return ApiError(400, error, f"{name}: {message}", errors=[{"field": name, "message": message}])
