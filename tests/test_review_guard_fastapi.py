"""``require_token`` and ``require_scopes`` answer in the realm of the guard that let it in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector, TokenInfo, require_scopes
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.fastapi import require_token
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REALM = "orders-api"

# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'


@pytest.fixture(scope="module")
def url(auth_server: RunningAuthServer) -> Iterator[str]:
    app = FastAPI()

    @app.get("/orders")
    def orders(info: Annotated[TokenInfo, Depends(require_token("orders:write"))]) -> str:
        return info.sub or ""

    @app.get("/health")  # excluded by the guard, yet asks for a token
    def health(info: Annotated[TokenInfo, Depends(require_token())]) -> str:
        return info.sub or ""

    @app.get("/other-realm")
    def other(info: Annotated[TokenInfo, Depends(require_token("admin", realm="admin"))]) -> str:
        return info.sub or ""

    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    guarded = GenAuthGuard(app, introspector=introspector, realm=REALM, exclude_paths=["/health"])
    with serve_in_thread(guarded) as base:
        yield base


def test_a_missing_scope_names_the_guards_realm(url: str, auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    response = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_scope", error_description="The access '
        'token lacks the scope this resource needs: orders:write.", scope="orders:write"'
        + DPOP_OFFER
    )
    writer = auth_server.server.mint("alice", "orders:write")
    ok = httpx.get(url + "/orders", headers={"Authorization": f"Bearer {writer}"})
    assert (ok.status_code, ok.json()) == (200, "alice")


def test_no_token_on_an_excluded_path_names_the_guards_realm(url: str) -> None:
    response = httpx.get(url + "/health")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == f'Bearer realm="{REALM}"'


def test_an_explicit_realm_still_wins(url: str, auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    response = httpx.get(url + "/other-realm", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith(
        'Bearer realm="admin", error="insufficient_scope"'
    )


def test_wsgi_require_scopes_on_an_excluded_path_names_the_guards_realm(
    auth_server: RunningAuthServer,
) -> None:
    """The WSGI twin: the guard records its realm for the routes it lets through untouched."""

    @require_scopes("reports:read")
    def reports(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"reports"]

    with SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        guarded = GenAuthGuardWSGI(
            reports, introspector=introspector, realm=REALM, exclude_paths=["/reports"]
        )
        with werkzeug_server(guarded) as base:
            response = httpx.get(base + "/reports")
    assert response.status_code == 403
    assert response.headers["www-authenticate"].startswith(
        f'Bearer realm="{REALM}", error="insufficient_scope"'
    )
