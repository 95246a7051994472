"""The hello-world apps measured bare and behind the guard, and how to call them directly.

Each framework's smallest real route: what remains of a request once the
application does (almost) nothing is the framework plus the guard, so the
ratio shows the guard's share at its largest. A real handler only shrinks it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Scope

HELLO = "Hello, world!"


def starlette_app() -> ASGIApp:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(HELLO)

    return Starlette(routes=[Route("/", hello)])


def fastapi_app() -> ASGIApp:
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/")
    async def hello() -> dict[str, str]:
        return {"message": HELLO}

    return app


def flask_app() -> Any:
    from flask import Flask

    app = Flask("hello")

    @app.route("/")
    def hello() -> str:
        return HELLO

    return app


# ---------------------------------------------------------------- calling ASGI directly


def asgi_scope(token: str | None, path: str = "/") -> Scope:
    """An HTTP scope as uvicorn builds it for ``GET path`` with a bearer token."""
    headers = [
        (b"host", b"127.0.0.1:8000"),
        (b"user-agent", b"genauth-guard-bench"),
        (b"accept", b"*/*"),
    ]
    if token is not None:
        headers.append((b"authorization", b"Bearer " + token.encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 54321),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers,
        "state": {},
    }


_REQUEST: Message = {"type": "http.request", "body": b"", "more_body": False}


async def receive() -> Message:
    return _REQUEST


async def discard(message: Message) -> None:
    pass


class StatusRecorder:
    """An ASGI ``send`` that keeps the status codes it saw."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.statuses.append(message["status"])


async def asgi_status(app: ASGIApp, scope: Scope) -> int:
    recorder = StatusRecorder()
    await app(dict(scope), receive, recorder)
    return recorder.statuses[0]


# ---------------------------------------------------------------- calling WSGI directly


def wsgi_environ(token: str | None, path: str = "/") -> dict[str, Any]:
    """A WSGI environ as a server builds it for ``GET path`` with a bearer token."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "genauth-guard-bench",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


def call_wsgi(app: Any, environ: dict[str, Any]) -> str:
    """Run one request through ``app`` as a server would; the status line."""
    status: list[str] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        status.append(line)
        return lambda data: None

    body: Iterable[bytes] = app(dict(environ), start_response)
    try:
        for _ in body:
            pass
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return status[0]
