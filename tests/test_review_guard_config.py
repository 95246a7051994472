"""The wrong kind of introspector is refused when the guard is built, not on every request.

Checked by shape: the ASGI guard takes any object whose ``introspect`` is a
coroutine function, the WSGI guard any whose ``introspect`` is a plain one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector, TokenInfo
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.errors import ConfigurationError
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}


async def asgi_whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(request.user.identity)


def wsgi_whoami(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ.get("REMOTE_USER", "").encode()]


class AsyncVerifier:
    """Not an ``Introspector``, but shaped like one."""

    async def introspect(self, token: str) -> TokenInfo:
        return TokenInfo(active=token == "good", sub="duck")


class SyncVerifier:
    def introspect(self, token: str) -> TokenInfo:
        return TokenInfo(active=token == "good", sub="duck")


def test_asgi_guard_refuses_a_sync_introspector(auth_server: RunningAuthServer) -> None:
    with (
        SyncIntrospector(auth_server.endpoint(), **CREDENTIALS) as sync,
        pytest.raises(ConfigurationError) as raised,
    ):
        GenAuthGuard(Starlette(), introspector=sync)  # type: ignore[arg-type]
    message = str(raised.value)
    assert "GenAuthGuard needs" in message
    assert "Introspector(...)" in message
    assert "GenAuthGuardWSGI" in message
    assert "post-secret" not in message


@pytest.mark.parametrize("wrong", [SyncVerifier(), "https://x.genauth.ai/oidc", None])
def test_asgi_guard_refuses_anything_without_an_async_introspect(wrong: Any) -> None:
    with pytest.raises(ConfigurationError, match="async"):
        GenAuthGuard(Starlette(), introspector=wrong)


@pytest.mark.parametrize("wrong", [AsyncVerifier(), "https://x.genauth.ai/oidc", None])
def test_wsgi_guard_refuses_anything_without_a_sync_introspect(wrong: Any) -> None:
    with pytest.raises(ConfigurationError, match="SyncIntrospector"):
        GenAuthGuardWSGI(wsgi_whoami, introspector=wrong)


def test_wsgi_guard_refuses_an_async_introspector(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)
    with pytest.raises(ConfigurationError, match=r"SyncIntrospector\(\.\.\.\)"):
        GenAuthGuardWSGI(wsgi_whoami, introspector=introspector)  # type: ignore[arg-type]


def test_any_verifier_of_the_right_shape_guards_both() -> None:
    asgi = GenAuthGuard(
        Starlette(routes=[Route("/me", asgi_whoami)]),
        introspector=AsyncVerifier(),  # type: ignore[arg-type]
    )
    wsgi = GenAuthGuardWSGI(wsgi_whoami, introspector=SyncVerifier())  # type: ignore[arg-type]
    with serve_in_thread(asgi) as asgi_url, werkzeug_server(wsgi) as wsgi_url:
        for url in (asgi_url, wsgi_url):
            ok = httpx.get(url + "/me", headers={"Authorization": "Bearer good"})
            assert (ok.status_code, ok.text) == (200, "duck")
            refused = httpx.get(url + "/me", headers={"Authorization": "Bearer bad"})
            assert refused.status_code == 401
