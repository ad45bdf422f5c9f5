"""The database away (restarting, unreachable) is a 503 with Retry-After, not a 500."""

from __future__ import annotations

import json

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sqlalchemy.exc import IntegrityError, OperationalError

from hub.api.errors import error_middleware


async def _answer(error: Exception) -> web.Response:
    async def handler(_request: web.Request) -> web.StreamResponse:
        raise error

    response = await error_middleware(make_mocked_request("GET", "/api/v1/deals"), handler)
    assert isinstance(response, web.Response)
    return response


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("SELECT 1", {}, Exception("the database system is shutting down")),
        ConnectionRefusedError(111, "Connection refused"),
    ],
)
async def test_an_unreachable_database_is_a_503_to_retry(error: Exception) -> None:
    response = await _answer(error)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.text is not None
    assert json.loads(response.text)["error"] == "database_unavailable"


async def test_any_other_database_error_stays_a_500() -> None:
    response = await _answer(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert response.status == 500
