"""A small orders API protected by GenAuthGuard (Starlette).

Run it against the embedded dev authorization server:

    genauth-guard dev-server            # prints the client id/secret and endpoints
    GENAUTH_INTROSPECTION_ENDPOINT=http://127.0.0.1:9000/oidc/token/introspection \\
    GENAUTH_CLIENT_ID=dev-client GENAUTH_CLIENT_SECRET=... \\
        uvicorn examples.starlette_app:app

or build it in code with ``create_app(introspector)`` (the tests and the demo do).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, get_token_info, require_scopes

ORDERS = [
    {"id": 1, "item": "keyboard", "owner": "alice"},
    {"id": 2, "item": "monitor", "owner": "bob"},
]


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def me(request: Request) -> JSONResponse:
    info = get_token_info(request)
    assert info is not None  # the guard let the request in
    return JSONResponse(
        {
            "identity": request.user.identity,
            "scopes": sorted(request.auth.scopes),
            "client_id": info.client_id,
            "expires_at": info.exp,
        }
    )


@require_scopes("orders:read")
async def list_orders(request: Request) -> JSONResponse:
    return JSONResponse({"orders": ORDERS})


@requires("orders:write")  # Starlette's own decorator works too: scope["auth"] is set
async def create_order(request: Request) -> JSONResponse:
    body = await request.json()
    order = {"id": len(ORDERS) + 1, "item": str(body.get("item")), "owner": request.user.identity}
    return JSONResponse(order, status_code=201)


def create_app(introspector: Introspector) -> Starlette:
    """The orders API behind the guard; ``/health`` is open."""
    return Starlette(
        routes=[
            Route("/health", health),
            Route("/me", me),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/orders", create_order, methods=["POST"]),
        ],
        middleware=[
            Middleware(GenAuthGuard, introspector=introspector, exclude_paths=["/health"])
        ],
    )


def _introspector_from_env() -> Introspector:
    return Introspector(
        os.environ.get(
            "GENAUTH_INTROSPECTION_ENDPOINT", "http://127.0.0.1:9000/oidc/token/introspection"
        ),
        client_id=os.environ.get("GENAUTH_CLIENT_ID", "dev-client"),
        client_secret=os.environ.get("GENAUTH_CLIENT_SECRET", "dev-secret"),
    )


app = create_app(_introspector_from_env())
