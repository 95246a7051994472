"""``exclude_paths`` match the path below the mount point, on ASGI as on WSGI.

The guarded app is mounted under ``/v1`` (a Starlette ``Mount``, uvicorn's
``--root-path``, a WSGI ``SCRIPT_NAME``); ``exclude_paths=["/health"]`` is
written for the app's own routes, so ``/v1/health`` is open and
``/v1/orders`` stays protected.
"""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard._middleware import request_path
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

OPTIONS: dict[str, Any] = {"exclude_paths": ["/health", "/public/*"], "realm": "orders-api"}
CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}


async def asgi_route(request: Request) -> JSONResponse:
    return JSONResponse({"token_info": "token_info" in request.scope})


def guarded_asgi(auth: RunningAuthServer) -> GenAuthGuard:
    app = Starlette(
        routes=[
            Route("/health", asgi_route),
            Route("/orders", asgi_route),
            Route("/public/{rest:path}", asgi_route),
        ]
    )
    return GenAuthGuard(app, introspector=Introspector(auth.endpoint(), **CREDENTIALS), **OPTIONS)


def wsgi_route(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({"token_info": "genauth_guard.token_info" in environ}).encode()]


@contextmanager
def uvicorn_with_root_path(app: Any, root_path: str) -> Iterator[str]:
    """uvicorn as ``uvicorn --root-path`` runs it, behind a proxy that strips the prefix."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off", root_path=root_path)
    server = uvicorn.Server(config)

    def run() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        server.run(sockets=[sock])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'


def assert_mounted_under_v1(base: str, token: str, prefix: str = "/v1") -> None:
    """``base + prefix`` is where the app is mounted; ``/health`` is excluded, nothing else."""
    with httpx.Client(base_url=base) as client:
        health = client.get(prefix + "/health")
        assert (health.status_code, health.json()) == (200, {"token_info": False})
        public = client.get(prefix + "/public/docs")
        assert (public.status_code, public.json()) == (200, {"token_info": False})
        for protected in ("/orders", "/public/%2E%2E/orders"):
            refused = client.get(prefix + protected)
            assert refused.status_code == 401, protected
            assert refused.headers["www-authenticate"] == 'Bearer realm="orders-api"' + DPOP_OFFER
        ok = client.get(prefix + "/orders", headers={"Authorization": f"Bearer {token}"})
        assert (ok.status_code, ok.json()) == (200, {"token_info": True})


def test_asgi_under_a_starlette_mount(auth_server: RunningAuthServer) -> None:
    outer = Starlette(routes=[Mount("/v1", app=guarded_asgi(auth_server))])
    with serve_in_thread(outer) as url:
        assert_mounted_under_v1(url, auth_server.server.mint("alice"))


def test_asgi_under_uvicorn_root_path(auth_server: RunningAuthServer) -> None:
    # The proxy in front strips /v1; uvicorn puts it back into scope["path"] and root_path.
    with uvicorn_with_root_path(guarded_asgi(auth_server), "/v1") as url:
        assert_mounted_under_v1(url, auth_server.server.mint("alice"), prefix="")


def test_wsgi_under_script_name(auth_server: RunningAuthServer) -> None:
    with SyncIntrospector(auth_server.endpoint(), **CREDENTIALS) as introspector:
        guarded = GenAuthGuardWSGI(wsgi_route, introspector=introspector, **OPTIONS)
        mounted = DispatcherMiddleware(NotFound(), {"/v1": guarded})  # SCRIPT_NAME=/v1
        with werkzeug_server(mounted) as url:
            assert_mounted_under_v1(url, auth_server.server.mint("alice"))


@pytest.mark.parametrize(
    ("root_path", "path", "routed"),
    [
        ("", "/health", "/health"),
        ("/v1", "/v1/health", "/health"),
        ("/v1", "/v1", "/"),
        ("/v1", "/v1health", "/v1health"),  # not below the mount point: left alone
        ("/v1", "/health", "/health"),  # Starlette < 0.33: root_path not inside path
    ],
)
def test_the_asgi_routing_path(root_path: str, path: str, routed: str) -> None:
    assert request_path({"type": "http", "path": path, "root_path": root_path}) == routed
