"""GenAuthGuard over real HTTP: a uvicorn-served app in front of the dev server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from genauth_guard import GenAuthGuard, Introspector, TokenInfo, get_token_info, require_scopes
from genauth_guard.dev.testing import serve_in_thread

from .conftest import RunningAuthServer

REALM = "orders-api"
# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'


async def whoami(request: Request) -> JSONResponse:
    info = get_token_info(request)
    assert info is not None
    return JSONResponse(
        {
            "identity": request.user.identity,
            "display_name": request.user.display_name,
            "authenticated": request.user.is_authenticated,
            "scopes": sorted(request.auth.scopes),
            "sub": info.sub,
            "client_id": info.client_id,
        }
    )


@require_scopes("orders:read")
async def read_orders(request: Request) -> JSONResponse:
    return JSONResponse({"orders": []})


@require_scopes("orders:read", "orders:write", realm=REALM)
def write_orders_sync(request: Request) -> JSONResponse:
    return JSONResponse({"written": True})


@requires("admin")
async def admin(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin")


class Reports(HTTPEndpoint):
    @require_scopes("reports:read")
    async def get(self, request: Request) -> JSONResponse:
        return JSONResponse({"reports": []})

    @require_scopes("reports:write")
    def post(self, request: Request) -> JSONResponse:
        return JSONResponse({"created": True})


async def open_route(request: Request) -> PlainTextResponse:
    return PlainTextResponse("open " + str("token_info" in request.scope))


async def ws_echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.identity)
    await websocket.close()


lifespan_events: list[str] = []


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    lifespan_events.append("startup")
    yield
    lifespan_events.append("shutdown")


@dataclass
class Api:
    url: str
    auth: RunningAuthServer
    introspector: Introspector

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.get(self.url + path, headers=headers, **kwargs)


@pytest.fixture(scope="module")
def api(auth_server: RunningAuthServer) -> Iterator[Api]:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = Starlette(
        routes=[
            Route("/me", whoami),
            Route("/orders", read_orders),
            Route("/orders/write", write_orders_sync, methods=["GET", "POST"]),
            Route("/admin", admin),
            Route("/reports", Reports),
            Route("/health", open_route),
            Route("/public/{rest:path}", open_route),
            Route("/staff", open_route),
            WebSocketRoute("/ws", ws_echo),
        ],
        lifespan=lifespan,
    )
    guarded = GenAuthGuard(
        app,
        introspector=introspector,
        exclude_paths=["/health", "/public/*"],
        realm=REALM,
    )
    with serve_in_thread(guarded) as url:
        yield Api(url, auth_server, introspector)


def error_body(response: httpx.Response) -> dict[str, str]:
    assert response.headers["content-type"] == "application/json"
    body: dict[str, str] = response.json()
    assert set(body) == {"error", "error_description"}
    return body


# ---------------------------------------------------------------- error table


def test_no_token_gets_a_bare_challenge(api: Api) -> None:
    response = api.get("/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"' + DPOP_OFFER
    assert "Authorization: Bearer" in error_body(response)["error_description"]


def test_another_scheme_is_no_token(api: Api) -> None:
    response = api.get("/me", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"' + DPOP_OFFER


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer")],
        [("Authorization", "Bearer two words")],
        [("Authorization", "Bearer tök".encode())],
        [("Authorization", "Bearer a,b")],
        [("Authorization", "Bearer x" * 5000)],
        [("Authorization", "@@@ nonsense")],
        [("Authorization", "Bearer abc"), ("Authorization", "Bearer abc")],
    ],
)
def test_malformed_requests_are_400_invalid_request(
    api: Api, headers: list[tuple[str, str | bytes]]
) -> None:
    before = api.auth.calls
    response = httpx.get(api.url + "/me", headers=headers)
    assert response.status_code == 400
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith(
        f'Bearer realm="{REALM}", error="invalid_request", error_description="'
    )
    assert error_body(response)["error"] == "invalid_request"
    assert api.auth.calls == before  # refused before any introspection


def test_token_in_header_and_query_is_400(api: Api) -> None:
    token = api.auth.server.mint("alice")
    response = api.get("/me", token, params={"access_token": token})
    assert response.status_code == 400
    assert "more than one place" in error_body(response)["error_description"]


def test_token_in_the_query_alone_is_refused_by_default(api: Api) -> None:
    token = api.auth.server.mint("alice")
    response = api.get("/me", params={"access_token": token})
    assert response.status_code == 400
    assert "not accepted" in error_body(response)["error_description"]


@pytest.mark.parametrize("kind", ["unknown", "revoked", "expired"])
def test_inactive_tokens_are_401_invalid_token(api: Api, kind: str) -> None:
    server = api.auth.server
    if kind == "unknown":
        token = "not-a-token-the-server-issued"
    elif kind == "revoked":
        token = server.mint("alice")
        server.revoke(token)
    else:
        token = server.mint("alice", expires_in=-10)
    response = api.get("/me", token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="invalid_token", error_description='
        '"The access token is not active (expired, revoked or unknown); get a new one."'
        + DPOP_OFFER
    )
    assert error_body(response)["error"] == "invalid_token"


def test_missing_scope_is_403_insufficient_scope(api: Api) -> None:
    token = api.auth.server.mint("alice", "orders:read")
    response = api.get("/orders/write", token)
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_scope", error_description='
        '"The access token lacks the scope this resource needs: orders:read orders:write.", '
        'scope="orders:read orders:write"' + DPOP_OFFER
    )
    assert error_body(response)["error"] == "insufficient_scope"


def test_a_token_expiring_after_caching_is_refused_at_exp(api: Api) -> None:
    token = api.auth.server.mint("alice", expires_in=2)
    assert api.get("/me", token).status_code == 200
    time.sleep(2.1)
    assert api.get("/me", token).status_code == 401


def test_authorization_server_down_is_503_with_retry_after(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(
        "http://127.0.0.1:9/introspection", client_id="c", client_secret="s", timeout=2
    )
    app = GenAuthGuard(Starlette(routes=[Route("/me", whoami)]), introspector=introspector)
    with serve_in_thread(app) as url:
        response = httpx.get(url + "/me", headers={"Authorization": "Bearer abc"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers
    assert error_body(response)["error"] == "temporarily_unavailable"


# ---------------------------------------------------------------- what routes see


def test_accepted_request_carries_user_auth_and_token_info(api: Api) -> None:
    token = api.auth.server.mint("alice", "orders:read profile")
    response = api.get("/me", token)
    assert response.status_code == 200
    assert response.json() == {
        "identity": "alice",
        "display_name": "alice",
        "authenticated": True,
        "scopes": ["orders:read", "profile"],
        "sub": "alice",
        "client_id": "post-client",
    }


def test_identity_falls_back_to_username_never_to_client_id(api: Api) -> None:
    by_username = api.auth.server.mint(None, username="carol")
    by_client = api.auth.server.mint(None, client_id="machine-client")
    assert api.get("/me", by_username).json()["identity"] == "carol"
    assert api.get("/me", by_client).json()["identity"] == ""


def test_require_scopes_on_function_and_method_endpoints(api: Api) -> None:
    reader = api.auth.server.mint("alice", "orders:read reports:read")
    writer = api.auth.server.mint("bob", "orders:read orders:write reports:write")
    assert api.get("/orders", reader).status_code == 200
    assert api.get("/orders/write", writer).json() == {"written": True}
    assert api.get("/reports", reader).status_code == 200
    assert api.get("/reports", writer).status_code == 403
    post = httpx.post(api.url + "/reports", headers={"Authorization": f"Bearer {writer}"})
    assert post.json() == {"created": True}
    post = httpx.post(api.url + "/reports", headers={"Authorization": f"Bearer {reader}"})
    assert post.status_code == 403
    assert 'scope="reports:write"' in post.headers["www-authenticate"]


def test_scopes_are_checked_on_every_request_not_cached(api: Api) -> None:
    token = api.auth.server.mint("alice", "orders:read")
    before = api.auth.calls
    assert api.get("/orders", token).status_code == 200  # caches the answer
    assert api.get("/orders/write", token).status_code == 403  # cached, still refused
    assert api.get("/admin", token).status_code == 403
    assert api.get("/orders", token).status_code == 200
    assert api.auth.calls - before == 1


def test_starlette_requires_works_with_the_guards_credentials(api: Api) -> None:
    assert api.get("/admin", api.auth.server.mint("root", "admin")).text == "admin"
    assert api.get("/admin", api.auth.server.mint("eve", "orders:read")).status_code == 403


# ---------------------------------------------------------------- exclusions, ws, lifespan


@pytest.mark.parametrize("path", ["/health", "/public/", "/public/docs/index.html"])
def test_excluded_paths_need_no_token(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 200
    assert response.text == "open False"


@pytest.mark.parametrize("path", ["/staff", "/healthz", "/public/../me", "/public/a/../../me"])
def test_paths_outside_the_exclusions_are_protected(api: Api, path: str) -> None:
    response = httpx.get(api.url + path)
    assert response.status_code == 401


def test_websocket_with_a_token_is_accepted(api: Api) -> None:
    from websockets.sync.client import connect

    token = api.auth.server.mint("dave")
    ws_url = api.url.replace("http", "ws") + "/ws"
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.recv() == "dave"


def test_websocket_without_a_token_is_refused(api: Api) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as caught:
        connect(api.url.replace("http", "ws") + "/ws")
    assert caught.value.response.status_code == 403


def test_lifespan_passes_through(api: Api) -> None:
    assert lifespan_events[:1] == ["startup"]


def test_error_bodies_are_json(api: Api) -> None:
    body = api.get("/me").content
    assert json.loads(body)["error"] == "unauthorized"


def test_fifty_concurrent_requests_share_one_introspection(api: Api) -> None:
    token = api.auth.server.mint("alice", "orders:read")
    before = api.auth.calls

    async def burst() -> list[int]:
        async with httpx.AsyncClient(
            base_url=api.url, limits=httpx.Limits(max_connections=50)
        ) as client:
            responses = await asyncio.gather(
                *(
                    client.get("/orders", headers={"Authorization": f"Bearer {token}"})
                    for _ in range(50)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 50
    assert api.auth.calls - before == 1


def test_no_token_reaches_a_log_record(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = api.auth.server.mint("alice", "orders:read")
    api.get("/orders", good)
    api.get("/orders/write", good)
    api.get("/me", "inactive-token-value")
    for record in caplog.records:
        assert good not in record.getMessage()
        assert "inactive-token-value" not in record.getMessage()


def test_fastapi_dependency_form(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = FastAPI()

    @app.get("/orders")
    def orders(
        info: Annotated[TokenInfo, Depends(require_scopes("orders:read"))],
    ) -> dict[str, Any]:
        return {"sub": info.sub}

    guarded = GenAuthGuard(app, introspector=introspector, realm=REALM)
    with serve_in_thread(guarded) as url:
        ok = httpx.get(
            url + "/orders",
            headers={"Authorization": "Bearer " + auth_server.server.mint("al", "orders:read")},
        )
        denied = httpx.get(
            url + "/orders", headers={"Authorization": "Bearer " + auth_server.server.mint("al")}
        )
    assert ok.json() == {"sub": "al"}
    assert denied.status_code == 403
    assert denied.headers["www-authenticate"].startswith(
        f'Bearer realm="{REALM}", error="insufficient_scope"'
    )


def test_query_tokens_when_allowed(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = Starlette(routes=[Route("/me", whoami)])
    guarded = GenAuthGuard(app, introspector=introspector, allow_query_token=True)
    token = auth_server.server.mint("qa")
    with serve_in_thread(guarded) as url:
        assert httpx.get(url + "/me", params={"access_token": token}).json()["identity"] == "qa"
        both = httpx.get(
            url + "/me",
            params={"access_token": token},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert both.status_code == 400


def test_required_scopes_on_the_middleware(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = Starlette(routes=[Route("/me", whoami)])
    guarded = GenAuthGuard(app, introspector=introspector, required_scopes=["api", "me"])
    with serve_in_thread(guarded) as url:
        ok = httpx.get(
            url + "/me",
            headers={"Authorization": "Bearer " + auth_server.server.mint("x", "api me extra")},
        )
        denied = httpx.get(
            url + "/me", headers={"Authorization": "Bearer " + auth_server.server.mint("x", "api")}
        )
    assert ok.status_code == 200
    assert denied.status_code == 403
    assert denied.headers["www-authenticate"].endswith('scope="api me"' + DPOP_OFFER)


def test_cors_outside_the_guard_answers_preflights(auth_server: RunningAuthServer) -> None:
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware

    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = Starlette(
        routes=[Route("/me", whoami)],
        middleware=[
            Middleware(
                CORSMiddleware,
                allow_origins=["https://web.example"],
                allow_headers=["authorization"],
            ),
            Middleware(GenAuthGuard, introspector=introspector),
        ],
    )
    origin = {"Origin": "https://web.example"}
    with serve_in_thread(app) as url:
        preflight = httpx.options(
            url + "/me",
            headers={
                **origin,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        refused = httpx.get(url + "/me", headers=origin)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://web.example"
    # The 401 carries the CORS header, so the browser lets the page read it.
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "https://web.example"
