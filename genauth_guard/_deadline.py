"""One synchronous HTTP exchange with one overall deadline, connect to last byte.

httpx's timeouts are per phase and per operation: the read timeout restarts
with every byte that arrives. A server that trickles its response headers (or
its body) a byte at a time never trips it and keeps the caller waiting for as
long as it likes. Checking a clock between body chunks does not help while
httpx is still reading the headers, and nothing in httpx's public API stops a
blocked read from another thread.

So the exchange runs in a worker thread and the caller waits for it for at
most ``timeout`` seconds. When the deadline passes the caller gets an
``httpx.TimeoutException`` at once, and the watchdog shuts the connection's
socket down, which wakes the worker from its read so that it ends too (the
connection is discarded). The socket is known from httpcore's ``trace``
extension when the exchange opened the connection, and from the response's
``network_stream`` once headers have arrived. One case is left: a keep-alive
connection reused from a caller's own client pool, before its headers
arrive. There the caller still gets its answer on time; the abandoned worker
ends at the connection's own per-read timeout (each phase is capped at
``timeout`` too) or when the server gives up.

The async driver does not need this: ``anyio.fail_after`` cancels a pending
read. The sync introspector can reuse ``send_with_deadline`` as it is.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import socket
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import httpx

__all__ = ["send_with_deadline"]

T = TypeVar("T")

_CONNECTED_EVENTS = (
    ".connect_tcp.complete",
    ".connect_unix_socket.complete",
    ".start_tls.complete",
)


def send_with_deadline(
    client: httpx.Client,
    request: httpx.Request,
    timeout: float,
    read: Callable[[httpx.Response], T],
) -> T:
    """Send ``request`` with ``client`` and return ``read(response)``, all within ``timeout``.

    ``read`` gets the streamed response (headers in, body not yet read) and
    reads what it needs, typically iterating ``response.iter_bytes()`` with
    its own size limit; the response is closed after it returns. Whatever
    ``read`` or ``client.send`` raise is raised here. When ``timeout`` seconds
    pass first: ``httpx.ConnectTimeout`` if no request was sent yet, else
    ``httpx.ReadTimeout``. ``read`` runs in a worker thread (with the caller's
    context variables); after a timeout its result is discarded.

    Each of httpx's per-phase timeouts is also capped at ``timeout``.
    ``timeout`` must be a finite number of seconds above 0 (``ValueError``).
    """
    if not isinstance(timeout, int | float) or not 0 < timeout < math.inf:
        raise ValueError(f"timeout={timeout!r} must be a finite number of seconds above 0")
    exchange = _Exchange(client, request, timeout, read)
    worker = threading.Thread(
        target=contextvars.copy_context().run,
        args=(exchange.run,),
        name="genauth-guard-deadline",
        daemon=True,
    )
    worker.start()
    if exchange.done.wait(timeout):
        return exchange.outcome()
    raise exchange.abandon()


class _Exchange(Generic[T]):
    """The worker's half: the exchange, and what the watchdog needs to cut it short."""

    def __init__(
        self,
        client: httpx.Client,
        request: httpx.Request,
        timeout: float,
        read: Callable[[httpx.Response], T],
    ) -> None:
        self.client = client
        self.request = request
        self.timeout = timeout
        self.read = read
        self.done = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._sending = False
        self._abandoned = False
        self._result: T | None = None
        self._error: BaseException | None = None
        phases = request.extensions.get("timeout") or {}
        request.extensions["timeout"] = {
            phase: timeout if phases.get(phase) is None else min(phases[phase], timeout)
            for phase in ("connect", "read", "write", "pool")
        }
        self._outer_trace = request.extensions.get("trace")
        request.extensions["trace"] = self._trace

    def run(self) -> None:
        try:
            response = self.client.send(self.request, stream=True)
            try:
                self._watch(response.extensions.get("network_stream"))
                result = self.read(response)
            finally:
                response.close()
        except BaseException as exc:  # handed to the caller, who raises it
            self._error = exc
        else:
            self._result = result
        finally:
            self.done.set()

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def abandon(self) -> httpx.TimeoutException:
        """Cut the exchange short; the exception the caller raises for it."""
        with self._lock:
            self._abandoned = True
            sockets, sending = list(self._sockets), self._sending
        for sock in sockets:
            _shut_down(sock)
        message = f"no complete answer within {self.timeout:g} s (overall deadline)"
        if sending:
            return httpx.ReadTimeout(message, request=self.request)
        return httpx.ConnectTimeout(message, request=self.request)

    def _trace(self, event: str, info: dict[str, Any]) -> None:
        if self._outer_trace is not None:
            self._outer_trace(event, info)
        if event.endswith(_CONNECTED_EVENTS):
            self._watch(info.get("return_value"))
        elif event.endswith("send_request_headers.started"):
            with self._lock:
                self._sending = True

    def _watch(self, stream: object) -> None:
        """Remember the socket under ``stream``; shut it at once if the deadline has passed."""
        get_extra_info = getattr(stream, "get_extra_info", None)
        sock = get_extra_info("socket") if callable(get_extra_info) else None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            self._sockets.append(sock)
            abandoned = self._abandoned
        if abandoned:
            _shut_down(sock)


def _shut_down(sock: socket.socket) -> None:
    """Wake any thread blocked on ``sock``; ``close`` alone would not on Linux."""
    with contextlib.suppress(OSError):  # already closed or never connected: nothing waits
        sock.shutdown(socket.SHUT_RDWR)
