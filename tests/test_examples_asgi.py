"""The ASGI examples (Starlette, FastAPI) and the demo's app, over HTTP, against the dev server."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import httpx
import pytest

from genauth_guard import Introspector
from genauth_guard.dev import _demo_app
from genauth_guard.dev.testing import serve_in_thread

from .conftest import RunningAuthServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'


def load_example(name: str, auth: RunningAuthServer) -> ModuleType:
    """Import ``examples/<name>.py`` as uvicorn would, configured as its docstring says."""
    spec = importlib.util.spec_from_file_location(f"_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    env = {
        "GENAUTH_APP_HOST": auth.url,
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
    }
    with mock.patch.dict(os.environ, env):
        spec.loader.exec_module(module)
    return module


def demo_app(auth: RunningAuthServer) -> Any:
    introspector = Introspector(
        auth.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    return _demo_app.create_app(introspector)


# The examples' module-level ``app`` (what ``uvicorn examples.x:app`` serves), and the demo's.
APPS: dict[str, Callable[[RunningAuthServer], Any]] = {
    "starlette example": lambda auth: load_example("starlette_app", auth).app,
    "fastapi example": lambda auth: load_example("fastapi_app", auth).app,
    "demo app": demo_app,
}


class Api:
    def __init__(self, url: str, auth: RunningAuthServer) -> None:
        self.url = url
        self.auth = auth

    def get(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, headers=self._headers(token), **kw)

    def post(self, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, headers=self._headers(token), **kw)

    @staticmethod
    def _headers(token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module", params=sorted(APPS))
def api(request: pytest.FixtureRequest, auth_server: RunningAuthServer) -> Iterator[Api]:
    with serve_in_thread(APPS[request.param](auth_server)) as url:
        yield Api(url, auth_server)


def test_health_is_open(api: Api) -> None:
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_no_token_gets_a_bare_challenge(api: Api) -> None:
    response = api.get("/orders")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"' + DPOP_OFFER


def test_reader_lists_orders(api: Api) -> None:
    token = api.auth.server.mint("alice", "orders:read")
    response = api.get("/orders", token)
    assert response.status_code == 200
    assert [order["item"] for order in response.json()["orders"]] == ["keyboard", "monitor"]


def test_me_shows_who_the_token_speaks_for(api: Api) -> None:
    token = api.auth.server.mint("alice", "profile orders:read")
    response = api.get("/me", token)
    assert response.status_code == 200
    body = response.json()
    assert body["identity"] == "alice"
    assert body["scopes"] == ["orders:read", "profile"]
    assert body["client_id"] == "post-client"
    assert isinstance(body["expires_at"], int)


def test_missing_scope_is_403_insufficient_scope(api: Api) -> None:
    token = api.auth.server.mint("carol", "profile")
    response = api.get("/orders", token)
    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="orders:read"' in challenge


@pytest.mark.parametrize("kind", ["revoked", "unknown"])
def test_inactive_token_is_401_invalid_token(api: Api, kind: str) -> None:
    token = "not-a-real-token"
    if kind == "revoked":
        token = api.auth.server.mint("alice", "orders:read")
        api.auth.server.revoke(token)
    response = api.get("/orders", token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_malformed_header_is_400(api: Api) -> None:
    response = httpx.get(api.url + "/orders", headers={"Authorization": "Bearer two tokens"})
    assert response.status_code == 400
    assert 'error="invalid_request"' in response.headers["www-authenticate"]


def test_writer_creates_an_order_reader_may_not(api: Api) -> None:
    writer = api.auth.server.mint("bob", "orders:read orders:write")
    reader = api.auth.server.mint("alice", "orders:read")
    created = api.post("/orders", writer, json={"item": "mouse"})
    assert created.status_code == 201
    assert created.json() == {"id": 3, "item": "mouse", "owner": "bob"}
    assert api.post("/orders", reader, json={"item": "mouse"}).status_code == 403


def test_bad_order_body_is_422(api: Api) -> None:
    writer = api.auth.server.mint("bob", "orders:write")
    assert api.post("/orders", writer, json=["mouse"]).status_code == 422


# ---------------------------------------------------------------- FastAPI's OpenAPI document


@pytest.fixture(scope="module")
def fastapi_api(auth_server: RunningAuthServer) -> Iterator[Api]:
    with serve_in_thread(load_example("fastapi_app", auth_server).app) as url:
        yield Api(url, auth_server)


def test_openapi_declares_the_bearer_scheme_on_protected_routes(fastapi_api: Api) -> None:
    response = fastapi_api.get("/openapi.json")  # public: no token needed
    assert response.status_code == 200
    doc = response.json()
    schemes = doc["components"]["securitySchemes"]
    assert len(schemes) == 1
    [(name, scheme)] = schemes.items()
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    paths = doc["paths"]
    for path, method in [("/orders", "get"), ("/orders", "post"), ("/me", "get")]:
        assert paths[path][method]["security"] == [{name: []}], (path, method)
    assert "security" not in paths["/health"]["get"]


def test_docs_are_served_without_a_token(fastapi_api: Api) -> None:
    response = fastapi_api.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_fastapi_dependency_fails_closed_without_the_guard(auth_server: RunningAuthServer) -> None:
    # A route behind require_token() but not behind the guard must not be open.
    from fastapi import Depends, FastAPI

    from genauth_guard.fastapi import require_token

    app = FastAPI()
    app.get("/orders", dependencies=[Depends(require_token("orders:read"))])(lambda: {"ok": 1})
    with serve_in_thread(app) as url:
        token = auth_server.server.mint("alice", "orders:read")
        response = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
