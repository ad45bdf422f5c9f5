"""Every REST route the hub serves is in its OpenAPI document (the UI uses the same API)."""

from __future__ import annotations

from hub.api.openapi import OPENAPI_PATH, document
from hub.app import create_app
from hub.settings import Settings


def test_every_api_route_is_documented() -> None:
    app = create_app(Settings(database_url="sqlite:///unused.sqlite3"))
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/")
        and route.resource.canonical != OPENAPI_PATH
        and route.method not in {"HEAD", "OPTIONS"}
    }
    paths = document()["paths"]
    documented = {(method, path) for path, item in paths.items() for method in item}
    assert served - documented == set()


def test_the_login_and_the_password_fields_are_documented() -> None:
    paths, schemas = document()["paths"], document()["components"]["schemas"]
    assert {"403", "415"} <= set(paths["/api/v1/session"]["post"]["responses"])
    assert {"password", "current_password"} <= set(schemas["Preferences"]["properties"])
    assert "password" in schemas["ManagerPatch"]["properties"]
    assert "429" in paths["/api/v1/me"]["patch"]["responses"]
