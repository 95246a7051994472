"""Who a token speaks for: ``sub``, else ``username``; a client's own token is nobody.

A client called ``alice`` acting for itself must not pass for the user
``alice``: ``request.user.identity`` is ``""`` and ``REMOTE_USER`` is unset
(even one the server had set). Over real HTTP, on both guards.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector, get_token_info
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment


async def asgi_me(request: Request) -> JSONResponse:
    info = get_token_info(request)
    assert info is not None
    return JSONResponse({"identity": request.user.identity, "client_id": info.client_id})


def wsgi_me(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    info = get_token_info(environ)
    assert info is not None
    body = {"remote_user": environ.get("REMOTE_USER"), "client_id": info.client_id}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


def server_set_remote_user(app: WSGIApplication) -> WSGIApplication:
    """A server (or an outer middleware) that already put someone in ``REMOTE_USER``."""

    def wrapper(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ["REMOTE_USER"] = "mallory"
        return app(environ, start_response)

    return wrapper


@dataclass
class Urls:
    auth: RunningAuthServer
    asgi: str
    wsgi: str

    def mint(self, sub: str | None, **kwargs: str) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.auth.server.mint(sub, **kwargs)}


@pytest.fixture(scope="module")
def urls(auth_server: RunningAuthServer) -> Iterator[Urls]:
    credentials = {"client_id": "post-client", "client_secret": "post-secret"}
    asgi = GenAuthGuard(
        Starlette(routes=[Route("/me", asgi_me)]),
        introspector=Introspector(auth_server.endpoint(), **credentials),
    )
    with SyncIntrospector(auth_server.endpoint(), **credentials) as sync:
        wsgi = server_set_remote_user(GenAuthGuardWSGI(wsgi_me, introspector=sync))
        with serve_in_thread(asgi) as asgi_url, werkzeug_server(wsgi) as wsgi_url:
            yield Urls(auth_server, asgi_url, wsgi_url)


# (sub, username, client_id) -> the identity the app sees ("" = nobody)
CASES = {
    "user alice": ("alice", None, "web-app", "alice"),
    "client alice acting for itself": (None, None, "alice", ""),
    "no sub, a username": (None, "carol", "web-app", "carol"),
    "empty sub falls to username": ("", "carol", "web-app", "carol"),
    "empty sub and empty username": ("", "", "machine-client", ""),
}


@pytest.mark.parametrize("case", CASES)
def test_asgi_identity_is_sub_else_username_never_the_client(urls: Urls, case: str) -> None:
    sub, username, client_id, identity = CASES[case]
    kwargs = {"client_id": client_id} | ({} if username is None else {"username": username})
    response = httpx.get(urls.asgi + "/me", headers=urls.mint(sub, **kwargs))
    assert response.status_code == 200
    assert response.json() == {"identity": identity, "client_id": client_id}


@pytest.mark.parametrize("case", CASES)
def test_wsgi_remote_user_is_sub_else_username_never_the_client(urls: Urls, case: str) -> None:
    sub, username, client_id, identity = CASES[case]
    kwargs = {"client_id": client_id} | ({} if username is None else {"username": username})
    response = httpx.get(urls.wsgi + "/me", headers=urls.mint(sub, **kwargs))
    assert response.status_code == 200
    # No user identity: REMOTE_USER is absent, also the one the server had set.
    assert response.json() == {"remote_user": identity or None, "client_id": client_id}
