"""The orders API ``genauth-guard demo`` serves behind ``GenAuthGuard``.

A copy of ``examples/starlette_app.py``'s app (the tests check that both
answer alike) rather than an import of it: ``examples/`` is not installed
with the package, and the demo must work from a plain
``pip install 'genauth-guard[dev-server]'``. The example stays a standalone
file a user can copy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._introspector import Introspector
from .._middleware import GenAuthGuard
from .._scopes import get_token_info, require_scopes

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
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not isinstance(body.get("item"), str):
        return JSONResponse({"error": 'send JSON {"item": "..."}'}, status_code=422)
    order = {"id": len(ORDERS) + 1, "item": body["item"], "owner": request.user.identity}
    return JSONResponse(order, status_code=201)


def create_app(introspector: Introspector) -> Starlette:
    """The orders API behind the guard; ``/health`` is open."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await introspector.aclose()  # close its connection pool with the app

    return Starlette(
        routes=[
            Route("/health", health),
            Route("/me", me),
            Route("/orders", list_orders, methods=["GET"]),
            Route("/orders", create_order, methods=["POST"]),
        ],
        middleware=[Middleware(GenAuthGuard, introspector=introspector, exclude_paths=["/health"])],
        lifespan=lifespan,
    )
