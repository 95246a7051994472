"""The orders API with FastAPI: scopes as dependencies, a bearer scheme in /docs.

``GenAuthGuard`` checks every request's token before FastAPI sees it;
``require_token(...)`` (from ``genauth_guard.fastapi``) checks the route's
scopes, hands the route the ``TokenInfo``, and makes the OpenAPI document
say the route needs a bearer token (the lock icons in ``/docs``).
``Depends(require_scopes("orders:read"))`` from ``genauth_guard`` works too,
without the OpenAPI part.

Run it against the embedded dev authorization server:

    genauth-guard dev-server     # prints GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET
    export GENAUTH_APP_HOST=http://127.0.0.1:9000 GENAUTH_APP_ID=dev-client GENAUTH_APP_SECRET=...
    uvicorn examples.fastapi_app:app --port 8000

then open http://127.0.0.1:8000/docs (against GenAuth, export your
application's values instead), or build it in code with
``create_app(introspector)`` (the tests do).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from pydantic import BaseModel

from genauth_guard import GenAuthGuard, Introspector, TokenInfo
from genauth_guard.fastapi import require_token

ORDERS = [
    {"id": 1, "item": "keyboard", "owner": "alice"},
    {"id": 2, "item": "monitor", "owner": "bob"},
]

# The paths served without a token: the health check and the API docs.
PUBLIC_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")

AnyToken = Annotated[TokenInfo, Depends(require_token())]
CanRead = Annotated[TokenInfo, Depends(require_token("orders:read"))]
CanWrite = Annotated[TokenInfo, Depends(require_token("orders:write"))]


class NewOrder(BaseModel):
    item: str


def create_app(introspector: Introspector) -> FastAPI:
    """The orders API behind the guard."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await introspector.aclose()

    app = FastAPI(title="Orders API", version="1.0", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/me")
    async def me(info: AnyToken) -> dict[str, Any]:
        return {
            "identity": info.identity,
            "scopes": sorted(info.scopes),
            "client_id": info.client_id,
            "expires_at": info.exp,
        }

    @app.get("/orders")
    async def list_orders(info: CanRead) -> dict[str, Any]:
        return {"orders": ORDERS}

    @app.post("/orders", status_code=201)
    async def create_order(order: NewOrder, info: CanWrite) -> dict[str, Any]:
        return {"id": len(ORDERS) + 1, "item": order.item, "owner": info.identity}

    app.add_middleware(GenAuthGuard, introspector=introspector, exclude_paths=PUBLIC_PATHS)
    return app


# GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET (and the other GENAUTH_* settings);
# a missing or wrong one stops the app here, with a message naming it.
app = create_app(Introspector.from_env())
