"""Reading JSON bodies into pydantic models, with errors that name each bad field.

Every body is validated in strict mode: a number is not a date, ``0`` is not ``false``,
``"5"`` is not 5. Text the databases cannot store (NUL; JSON itself refuses lone
surrogates) is refused with a 400 naming the field (:mod:`crm_core.text`).
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from crm_core.text import first_problem
from hub.api.errors import ApiError, field_error
from webhooks.common import is_json  # the one reading of "a JSON body", for hooks and API

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The body as ``model``; a 400 naming the fields when it does not fit."""
    if not is_json(request.content_type):  # also what no HTML form can send
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.read()
    if _FLOAT.search(raw) is not None:
        raw = _integral_numbers_as_integers(raw)
    try:
        body = model.model_validate_json(raw, strict=True)
    except ValidationError as exc:
        raise invalid_body(exc) from None
    if b"\\u0000" in raw:  # the only way a NUL gets into JSON text
        _refuse_unstorable(body.model_dump(mode="json"))
    return body


# A JSON number with a fraction or an exponent: JSON Schema's "integer" takes 425.0 and
# 4.25e2, which strict validation would refuse; they are read as the integers they are.
_FLOAT = re.compile(rb"[0-9][.eE]")


def _integral_numbers_as_integers(raw: bytes) -> bytes:
    try:
        document = json.loads(raw)
    except ValueError:
        return raw  # the validation names what is wrong with it
    return json.dumps(_integral(document)).encode()


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _integral(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _refuse_unstorable(document: object) -> None:
    """A 400 naming the first field whose text the databases cannot store."""
    found = first_problem(document)
    if found is not None:
        raise field_error(*found)


def invalid_body(exc: ValidationError) -> ApiError:
    """A pydantic validation error as a 400 that names each bad field."""
    errors = []
    for error in exc.errors(include_url=False, include_input=False):
        field = _field_path(error["loc"])
        if error["type"] == "json_invalid":
            return ApiError(400, "invalid_json", f"the body is not valid JSON: {error['msg']}")
        if error["type"] == "model_type" and not error["loc"]:
            return ApiError(400, "invalid_body", "the body must be a JSON object")
        errors.append({"field": field, "message": error["msg"]})
    first = errors[0]
    summary = f"{first['field']}: {first['message']}" if first["field"] else first["message"]
    return ApiError(400, "invalid_body", summary, errors=errors)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
