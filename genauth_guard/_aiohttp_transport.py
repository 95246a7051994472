"""The aiohttp transport (extra ``genauth-guard[aiohttp]``): the same exchange, faster.

Imported only when the extra is installed (``_transport.default_choice``).
It runs the flow's ``Exchange`` step on an ``aiohttp.ClientSession``
directly, rather than through an httpx transport adapter: the adapter keeps
httpx's per-request machinery and maps some failures wrongly (a reset
becomes a connect timeout, so it is not retried); the numbers are in
``docs/performance.md``.

Promises kept as the httpx side keeps them (see ``_transport``): the shared
verified TLS context, ``trust_env=False`` (no proxy or ``.netrc`` from the
environment), no cookies, no redirects, no automatic decompression (the
``BoundedBody`` decodes and cuts), a pool of ``max_concurrent_introspections``
keep-alive connections. No aiohttp timeout is set: the runner's
``asyncio.timeout`` bounds the whole exchange, connect to last byte, and one
timer per call is cheaper than four. aiohttp's failures are raised as the
httpx exceptions that mean the same, so the flow judges (retry, breaker,
message) exactly as it judges httpx's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from typing import Final

import aiohttp
import httpx

from ._protocol import BoundedBody
from ._steps import Answer

_SET_BY_AIOHTTP: Final = frozenset({b"host", b"content-length"})
"""Headers aiohttp writes itself from the URL and the body."""

_NO_TIMEOUT: Final = aiohttp.ClientTimeout(total=None, connect=None, sock_read=None)


def _as_httpx_error(exc: aiohttp.ClientError) -> Exception:
    """The httpx exception that says what ``exc`` says (the flow knows httpx's classes).

    Timeouts stay ``TimeoutError`` (aiohttp's are subclasses); the text is
    aiohttp's, which names no header and no body (never a secret or token).
    """
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return exc
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS verification
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionResetError):
        return httpx.ReadError(message)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):  # dropped, truncated, or not HTTP at all
        return httpx.RemoteProtocolError(message)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(message)
    return httpx.TransportError(message)


class AiohttpTransport:
    """One ``aiohttp.ClientSession`` on the event loop it was made on."""

    def __init__(self, max_connections: int, tls: ssl.SSLContext) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, ssl=tls),
            trust_env=False,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=_NO_TIMEOUT,
            skip_auto_headers=("User-Agent",),
        )

    async def exchange(self, request: httpx.Request, max_bytes: int) -> Answer:
        # From the raw list: httpx's str views decode every header on each access.
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in request.headers.raw
            if name.lower() not in _SET_BY_AIOHTTP
        }
        try:
            async with self._session.request(
                request.method,
                str(request.url),
                data=request.content,
                headers=headers,
                allow_redirects=False,
            ) as response:
                # aiohttp's case-insensitive view for the hot lookups; httpx's for the flow.
                body = BoundedBody(response.status, response.headers, max_bytes)
                content = response.content
                while chunk := await content.readany():
                    if body.feed(chunk):
                        break  # leaving unread bytes: aiohttp closes, not pools, the connection
                answer_headers = httpx.Headers(list(response.raw_headers))
                return Answer(response.status, answer_headers, body.body())
        except aiohttp.ClientError as exc:
            raise _as_httpx_error(exc) from None

    async def aclose(self) -> None:
        if asyncio.get_running_loop() is self._loop:
            await self._session.close()
        elif self._loop.is_running():  # closed from another thread's loop
            closing = asyncio.run_coroutine_threadsafe(self._session.close(), self._loop)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.wrap_future(closing), timeout=5)
        else:
            self.abandon()

    def __del__(self) -> None:
        """An introspector dropped without ``aclose()`` (common: one per app, never closed).

        aiohttp would log "Unclosed client session" at ERROR when the session
        is collected; httpx says nothing. Close what can be closed instead.
        """
        with contextlib.suppress(Exception):
            self.abandon()

    def abandon(self) -> None:
        """Close what can be closed without awaiting; mark the rest closed (no warnings later).

        On a loop that is closed nothing can be sent any more; a loop running
        in another thread closes the session itself.
        """
        if self._session.closed:
            return
        if self._loop.is_running() and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self._session.close(), self._loop)
            return
        connector = self._session.connector
        self._session.detach()
        if connector is not None:
            # The sync part of close() shuts the sockets; what it returns only
            # waits for that, and on a loop that is closed it has nothing to wait for.
            waiter = connector.close()
            with contextlib.suppress(StopIteration, RuntimeError):
                waiter.__await__().send(None)
