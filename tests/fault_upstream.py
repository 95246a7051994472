"""A real, misbehaving introspection endpoint on 127.0.0.1 whose faults a test switches.

Two layers, one URL:

- ``FaultyApp``, an ASGI app served by uvicorn (``serve_in_thread``), answers
  introspection requests the way a broken server would: 500, HTML, a huge or
  endless body, a gzip bomb, wrong JSON types, a body dripping in slowly...
  It counts calls and, server-side, how many run at once.
- ``TcpFront``, a small asyncio TCP server in its own thread in front of it,
  produces what no HTTP app can: a refused port, a connection that is
  accepted and never answered, a reset, a truncated answer, non-HTTP bytes.
  In ``pass`` mode it relays bytes to uvicorn. Modes are checked on every
  request, so a pooled keep-alive connection meets the fault too.

``FaultyUpstream.set(mode)`` switches both; ``"ok"`` is a healthy server,
``"gzip"`` a healthy one that compresses although asked not to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import json
import socket
import struct
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from genauth_guard.dev.testing import serve_in_thread

Send_ = Callable[[int, bytes, list[tuple[bytes, bytes]]], Awaitable[None]]

JSON = [(b"content-type", b"application/json")]
HTML = [(b"content-type", b"text/html")]


@functools.cache
def gzip_bomb() -> bytes:
    """30 MB of JSON-ish zeros, gzip-compressed to ~30 KB: under the limit on the wire."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [packer.compress(b'{"active": true, "pad": "')]
    zeros = b"0" * 1_000_000
    parts += [packer.compress(zeros) for _ in range(30)]
    return b"".join([*parts, packer.flush()])


# Answers that are HTTP 200 but not an RFC 7662 answer (each must be a failure, 503).
MALFORMED: dict[str, bytes] = {
    "active string": b'{"active": "true"}',
    "active one": b'{"active": 1}',
    "active null": b'{"active": null}',
    "active missing": b'{"sub": "alice"}',
    "exp string": b'{"active": true, "exp": "tomorrow"}',
    "exp NaN": b'{"active": true, "exp": NaN}',
    "exp infinity": b'{"active": true, "exp": 1e999}',
    "scope number": b'{"active": true, "scope": 7}',
    "aud numbers": b'{"active": true, "aud": [1, 2]}',
    "sub object": b'{"active": true, "sub": {"id": "alice"}}',
    "json list": b"[true]",
    "json null": b"null",
    "json string": b'"active"',
    "empty body": b"",
    "not utf-8": b'{"active": true, "sub": "\xff\xfe"}',
    "deep nesting": b"[" * 30_000 + b"]" * 30_000,
    "duplicate keys": b'{"active": true, "active": "yes"}',
    # Integers JSON allows but a float cannot hold: math.isfinite() overflows on them.
    "exp overflow": b'{"active": true, "sub": "alice", "exp": 1' + b"0" * 400 + b"}",
    "nbf overflow": b'{"active": true, "sub": "alice", "nbf": -1' + b"0" * 400 + b"}",
    # A binding of the wrong shape must never let a bound token pass as a bearer token.
    "cnf string": b'{"active": true, "sub": "alice", "cnf": "abc"}',
    "cnf list": b'{"active": true, "sub": "alice", "cnf": ["jkt"]}',
    "cnf null": b'{"active": true, "sub": "alice", "cnf": null}',
    "cnf jkt number": b'{"active": true, "sub": "alice", "cnf": {"jkt": 7}}',
    "cnf jkt object": b'{"active": true, "sub": "alice", "cnf": {"jkt": {"kty": "EC"}}}',
    "cnf x5t null": b'{"active": true, "sub": "alice", "cnf": {"x5t#S256": null}}',
}

TCP_MODES = frozenset({"refuse", "hang", "reset", "truncate", "garbage", "trickle headers"})
APP_MODES = frozenset(
    {
        "ok",
        "gzip",
        "500",
        "502",
        "503",
        "504",
        "429",
        "503 odd retry-after",
        "401",
        "404",
        "302",
        "html",
        "huge",
        "endless",
        "gzip bomb",
        "slow body",
        "echo",
        *MALFORMED,
    }
)


class FaultyApp:
    """The ASGI half: answers introspection requests according to ``mode``."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.tokens: dict[str, dict[str, Any]] = {}
        self.calls = 0
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def reset_counters(self) -> None:
        with self._lock:
            self.calls = self.max_running = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        token = dict(parse_qsl(body.decode())).get("token", "")
        with self._lock:
            self.calls += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)

            async def respond(
                status: int, content: bytes, headers: list[tuple[bytes, bytes]]
            ) -> None:
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": content})

            await self._answer(token, respond, send)
        finally:
            with self._lock:
                self.running -= 1

    async def _answer(self, token: str, respond: Send_, send: Send) -> None:
        mode = self.mode
        if mode == "ok":
            claims = self.tokens.get(token)
            answer = {"active": False} if claims is None else {"active": True, **claims}
            await respond(200, json.dumps(answer).encode(), JSON)
        elif mode == "gzip":  # healthy, but compressed although we asked for identity
            claims = self.tokens.get(token)
            answer = {"active": False} if claims is None else {"active": True, **claims}
            packed = gzip.compress(json.dumps(answer).encode())
            await respond(200, packed, [*JSON, (b"content-encoding", b"gzip")])
        elif mode in MALFORMED:
            await respond(200, MALFORMED[mode], JSON)
        elif mode in ("500", "502", "503", "504"):
            await respond(int(mode), b"<html><body>Bad Gateway</body></html>", HTML)
        elif mode == "503 odd retry-after":  # Unicode digits: str.isdigit() says yes
            await respond(503, b"busy", [(b"retry-after", "\u00b2".encode("latin-1"))])
        elif mode == "429":
            await respond(429, b'{"error": "slow_down"}', [*JSON, (b"retry-after", b"30")])
        elif mode == "401":
            await respond(401, b'{"error": "invalid_client"}', JSON)
        elif mode == "404":
            await respond(404, b"Not Found", HTML)
        elif mode == "302":
            await respond(302, b"", [(b"location", b"https://login.example/")])
        elif mode == "html":
            await respond(200, b"<html><body>Please log in</body></html>", HTML)
        elif mode == "echo":  # a server that repeats the token back, in every place it can
            echoed = json.dumps({"error": "invalid_request", "error_description": token})
            await respond(400, echoed.encode(), [*JSON, (b"x-token", token.encode())])
        elif mode == "huge":
            pad = b"x" * 1_000_000
            await respond(200, b'{"active": true, "pad": "' + pad + b'"}', JSON)
        elif mode == "gzip bomb":
            await respond(200, gzip_bomb(), [*JSON, (b"content-encoding", b"gzip")])
        elif mode in ("endless", "slow body"):
            await self._stream(send, slow=mode == "slow body")
        else:  # pragma: no cover - a typo in a test
            raise AssertionError(f"unknown mode {mode!r}")

    async def _stream(self, send: Send, *, slow: bool) -> None:
        """A chunked body: 16 KiB chunks for ever (``endless``), or a byte every 0.1 s."""
        await send({"type": "http.response.start", "status": 200, "headers": JSON})
        await send({"type": "http.response.body", "body": b'{"active": true', "more_body": True})
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.mode in ("endless", "slow body"):
            await send(
                {
                    "type": "http.response.body",
                    "body": b" " if slow else b" " * 16384,
                    "more_body": True,
                }
            )
            await asyncio.sleep(0.1 if slow else 0)
        await send({"type": "http.response.body", "body": b"}"})


class TcpFront:
    """The TCP half: relays to ``target_port``, or breaks the connection per ``mode``."""

    def __init__(self, target_port: int) -> None:
        self.mode = "pass"
        self.target_port = target_port
        self.faulted = 0  # requests met by a TCP fault (relayed ones count in FaultyApp.calls)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tcp-front", daemon=True)
        self._thread.start()
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = asyncio.Event()
        self.listen()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def listen(self) -> None:
        async def start() -> asyncio.Server:
            return await asyncio.start_server(
                self._handle, "127.0.0.1", self.port, reuse_address=True
            )

        if self._server is None:
            self._server = self._run(start())

    def refuse(self) -> None:
        """Close the listening socket (connect: refused) and reset every open connection."""

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
                self._server = None
            for writer in list(self._writers):
                _reset(writer)

        self._run(stop())

    def close(self) -> None:
        async def stop() -> None:
            self._closing.set()
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        pump: asyncio.Task[None] | None = None
        try:
            while data := await reader.read(65536):
                mode = self.mode
                if mode != "pass":
                    self.faulted += 1
                if mode == "pass":
                    if upstream is None:
                        up_reader, upstream = await asyncio.open_connection(
                            "127.0.0.1", self.target_port
                        )
                        pump = asyncio.ensure_future(_relay(up_reader, writer))
                    upstream.write(data)
                    await upstream.drain()
                    continue
                if mode == "hang":  # accepted, request read, never answered
                    await self._closing.wait()
                elif mode == "truncate":
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                        b'content-length: 100\r\n\r\n{"active": tr'
                    )
                    await writer.drain()
                elif mode == "trickle headers":  # a status line, then a byte at a time
                    writer.write(b"HTTP/1.1 200 OK\r\nx-slow: ")
                    while not self._closing.is_set() and self.mode == mode:
                        await writer.drain()
                        await asyncio.sleep(0.1)
                        writer.write(b"a")
                elif mode == "garbage":
                    writer.write(b"SSH-2.0-OpenSSH_9.6\r\n\x00\xff\x00\xff")
                    await writer.drain()
                else:  # reset, refuse
                    _reset(writer)
                return
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            if pump is not None:
                pump.cancel()
            if upstream is not None:
                upstream.close()
            writer.close()


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, OSError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST (SO_LINGER 0), the way a crashed peer or a firewall does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultyUpstream:
    """Both halves; ``url`` is the introspection endpoint to configure."""

    def __init__(self, app: FaultyApp, front: TcpFront, direct_url: str) -> None:
        self.app = app
        self.front = front
        self.direct_url = direct_url
        self.url = f"http://127.0.0.1:{front.port}/introspect"

    def set(self, mode: str) -> None:
        if mode not in TCP_MODES and mode not in APP_MODES:
            raise ValueError(f"unknown fault {mode!r}")
        self.app.mode = mode if mode in APP_MODES else "ok"
        if mode == "refuse":
            self.front.refuse()
        else:
            self.front.listen()
        self.front.mode = mode if mode in TCP_MODES else "pass"

    @property
    def calls(self) -> int:
        """Introspection requests that reached this server, faulted at TCP level or not."""
        return self.app.calls + self.front.faulted


@contextmanager
def faulty_upstream() -> Iterator[FaultyUpstream]:
    app = FaultyApp()
    with serve_in_thread(app) as direct:
        front = TcpFront(int(direct.rsplit(":", 1)[1]))
        try:
            yield FaultyUpstream(app, front, f"{direct}/introspect")
        finally:
            front.close()
