"""``Introspector``: the asyncio driver of the introspection protocol.

One pooled ``httpx.AsyncClient`` (keep-alive), created on first use so the
introspector can be built at import time, before any event loop runs.
Concurrent requests for one uncached token share a single call: the call
runs as its own task, so a request that gives up (client disconnect) does
not cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType
from typing import Unpack

import httpx

from .core import IntrospectorBase, IntrospectorOptions
from .errors import IntrospectionError
from .token_info import TokenInfo


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
        super().__init__(introspection_endpoint, **options)
        self._own_client = http_client is None
        self._client = http_client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[bytes, asyncio.Task[TokenInfo]] = {}

    async def introspect(self, token: str) -> TokenInfo:
        """What the authorization server says about ``token`` (maybe from the cache).

        Raises ``IntrospectionError`` when no answer could be had; that is
        never cached.
        """
        key = self._key(token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        self._check_token(token)
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
            if self._own_client:
                self._client = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout, follow_redirects=False, trust_env=False
            )
        return self._client

    async def _fetch(self, key: bytes, token: str) -> TokenInfo:
        request = self._request(token)
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._http().send(request, stream=True)
                try:
                    body = bytearray()
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if self._body_limit_exceeded(response.headers, len(body)):
                            raise self._too_large(key)
                finally:
                    await response.aclose()
        except IntrospectionError:
            raise
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise self._transport_failed(key, exc) from None
        return self._accept(key, response.status_code, response.headers, bytes(body))

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
