"""Reading JSON bodies into pydantic models, with errors that name each bad field."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from hub.api.errors import ApiError

Model = TypeVar("Model", bound=BaseModel)


async def parse_body(request: web.Request, model: type[Model]) -> Model:
    """The body as ``model``; a 400 naming the fields when it does not fit."""
    try:
        return model.model_validate_json(await request.read())
    except ValidationError as exc:
        raise invalid_body(exc) from None


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
