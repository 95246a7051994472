"""Real servers for the WSGI tests: a gated dev authorization server, werkzeug, gunicorn."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from genauth_guard.dev.server import DevAuthServer
from genauth_guard.dev.testing import serve_in_thread

from .conftest import CLIENTS

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Gate:
    """An ASGI app in front of the dev server that slows or replaces introspection answers.

    ``delay`` seconds pass before each introspection request goes on, so that
    concurrent callers really overlap; with ``status`` set, the request is
    answered with that status and ``Retry-After: 7`` instead (counted in
    ``refused``), a real server failing for real.
    """

    app: ASGIApp
    delay: float = 0.0
    status: int | None = None
    refused: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/token/introspection"):
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status is not None:
                self.refused += 1
                failure = JSONResponse(
                    {"error": "temporarily_unavailable"},
                    status_code=self.status,
                    headers={"Retry-After": "7"},
                )
                await failure(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class GatedAuthServer:
    server: DevAuthServer
    gate: Gate
    url: str

    def endpoint(self) -> str:
        return f"{self.url}/oidc/token/introspection"

    @property
    def calls(self) -> int:
        return self.server.introspection_calls

    @contextmanager
    def slowed(self, delay: float) -> Iterator[None]:
        self.gate.delay = delay
        try:
            yield
        finally:
            self.gate.delay = 0.0

    @contextmanager
    def failing(self, status: int) -> Iterator[None]:
        self.gate.status = status
        try:
            yield
        finally:
            self.gate.status = None


@contextmanager
def gated_auth_server() -> Iterator[GatedAuthServer]:
    server = DevAuthServer(CLIENTS)
    gate = Gate(server.app)
    with serve_in_thread(gate) as url:
        server.issuer = url
        yield GatedAuthServer(server, gate, url)


def bound_socket() -> socket.socket:
    """A listening-ready socket on a free 127.0.0.1 port (no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def closed_port_url() -> str:
    """The URL of an introspection endpoint nobody listens on."""
    with bound_socket() as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/oidc/token/introspection"


@contextmanager
def werkzeug_server(app: WSGIApplication) -> Iterator[str]:
    """Serve ``app`` with werkzeug's threaded WSGI server on 127.0.0.1; yields its URL."""
    from werkzeug.serving import make_server

    sock = bound_socket()
    sock.listen(64)
    server = make_server("127.0.0.1", 0, app, threaded=True, fd=sock.fileno())
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="werkzeug", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        sock.close()


@dataclass
class Gunicorn:
    url: str
    process: subprocess.Popen[bytes]
    log: list[bytes] = field(default_factory=list)


@contextmanager
def gunicorn(
    app_spec: str,
    env: Mapping[str, str],
    *,
    threads: int = 8,
    workers: int = 1,
    worker_class: str = "gthread",
) -> Iterator[Gunicorn]:
    """Run ``gunicorn app_spec`` (one gthread worker) on a socket bound here; yields its URL."""
    sock = bound_socket()
    sock.listen(64)
    fd = sock.fileno()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"fd://{fd}",
        "--workers",
        str(workers),
        "--worker-class",
        worker_class,
        *(["--threads", str(threads)] if worker_class == "gthread" else []),
        "--log-level",
        "warning",
        "--graceful-timeout",
        "2",
        app_spec,
    ]
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        pass_fds=[fd],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else b""
                raise RuntimeError(f"gunicorn exited: {output.decode(errors='replace')}")
            try:
                httpx.get(url + "/health", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield Gunicorn(url, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        sock.close()
