"""``Introspector``: the asyncio driver of the introspection protocol.

One pooled ``httpx.AsyncClient`` (keep-alive), created on first use so the
introspector can be built at import time, before any event loop runs.
Concurrent requests for one uncached token share a single call: the call
runs as its own task, so a request that gives up (client disconnect) does
not cancel it for the others. Calls are bounded by an ``asyncio.Semaphore``
(``max_concurrent_introspections``) that only the shared tasks take, so the
limit counts calls to the server, not waiting requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Unpack

import httpx

from ._base import IntrospectorBase
from ._options import IntrospectorOptions
from ._token_info import TokenInfo
from .errors import ConfigurationError, IntrospectionError


class Introspector(IntrospectorBase):
    """Async RFC 7662 client with an exp-bounded cache and single flight.

    See ``IntrospectorBase`` for the options; ``http_client`` is an
    ``httpx.AsyncClient`` you own (and close) yourself.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        **options: Unpack[IntrospectorOptions],
    ) -> None:
        if http_client is not None and not isinstance(http_client, httpx.AsyncClient):
            raise ConfigurationError(
                f"Introspector needs an httpx.AsyncClient as http_client, not "
                f"{type(http_client).__name__}; pass httpx.AsyncClient(...), or give your "
                "httpx.Client to SyncIntrospector (the driver for WSGI and threads)."
            )
        super().__init__(introspection_endpoint, **options)
        self._own_client = http_client is None
        self._client = http_client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[bytes, asyncio.Task[TokenInfo]] = {}
        self._slots = asyncio.Semaphore(self.max_concurrent_introspections)

    async def introspect(self, token: str) -> TokenInfo:
        """What the authorization server says about ``token`` (maybe from the cache).

        Raises ``IntrospectionError`` when no answer could be had; that is
        never cached.
        """
        key, cached = self._lookup(token)
        if cached is not None:
            return cached
        self._bind_loop()
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key, token))
            self._inflight[key] = task
            task.add_done_callback(self._forget_flight(key))
        return await asyncio.shield(task)

    def _forget_flight(self, key: bytes) -> Callable[[asyncio.Task[TokenInfo]], None]:
        def done(task: asyncio.Task[TokenInfo]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]
            if not task.cancelled():
                task.exception()  # retrieved: nobody may be left waiting for it

        return done

    def _bind_loop(self) -> None:
        """Start afresh on a new event loop: pooled connections belong to the old one."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._inflight = {}
            self._slots = asyncio.Semaphore(self.max_concurrent_introspections)
            if self._own_client:
                self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # verify=True (httpx's default) on purpose: TLS is checked unless the
            # user passes a client of their own.
            self._client = httpx.AsyncClient(
                timeout=self.timeout,
                follow_redirects=False,
                trust_env=False,
                limits=self._http_limits(),
            )
        return self._client

    async def _fetch(self, key: bytes, token: str) -> TokenInfo:
        """One introspection for the single flight: breaker, slot, attempts, outcome."""
        try:
            self.breaker.check()
            await self._take_slot()
            try:
                info = await self._attempts(key, token)
            except BaseException as exc:
                self.breaker.record(exc, key)
                raise
            finally:
                self._slots.release()
            self.breaker.record(None)
        except IntrospectionError as error:
            return self._give_up(key, error)
        return self._accept(key, info)

    async def _take_slot(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: no waiting, no timer
            return
        try:
            async with asyncio.timeout(self.queue_timeout):
                await self._slots.acquire()
        except TimeoutError:
            raise self._no_slot() from None
        except BaseException:
            self.breaker.release()
            raise

    async def _attempts(self, key: bytes, token: str) -> TokenInfo:
        request = self._request(token)
        attempt = 1
        while True:
            try:
                return self._parse(key, *await self._exchange(request))
            except Exception as exc:  # every failure of one attempt is judged, none escapes
                error, delay = self._judge(key, exc, attempt)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    async def _exchange(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        """Send one request; the status, headers and (bounded) body, within ``timeout``."""
        async with asyncio.timeout(self.timeout):
            response = await self._http().send(request, stream=True)
            try:
                body = self._body(response)
                if not response.is_stream_consumed:
                    async for chunk in response.aiter_raw():
                        if body.feed(chunk):
                            break
            finally:
                await response.aclose()
        return response.status_code, response.headers, body.body()

    async def revoke(self, token: str, token_type_hint: str | None = "access_token") -> None:
        """Revoke ``token`` at the authorization server (RFC 7009) and forget its answer.

        Raises ``RevocationError`` unless the server confirmed (200), and
        ``ConfigurationError`` if no revocation endpoint is configured. An
        introspection of the token already in flight is waited for, so its
        answer (from before the revocation) cannot land in the cache after it.
        """
        request = self._revocation_request(token, token_type_hint)
        self._bind_loop()
        try:
            answer = await self._exchange(request)
        except (IntrospectionError, httpx.HTTPError, TimeoutError, OSError) as exc:
            raise self._revocation_failed(exc) from None
        self._confirm_revocation(token, *answer)
        flight = self._inflight.get(self._key(token))
        if flight is not None:
            await asyncio.wait([flight], timeout=self.timeout)
            self.invalidate(token)

    async def aclose(self) -> None:
        """Close the HTTP client if the introspector created it."""
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    async def __aenter__(self) -> Introspector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
