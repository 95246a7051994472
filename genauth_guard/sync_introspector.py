"""``SyncIntrospector``: the threaded driver (WSGI, gunicorn threads, scripts).

Same options, cache and protocol as ``Introspector`` (they live in
``core.IntrospectorBase``); only the waiting differs. Single flight across
threads: the first thread to miss a token makes the call, the others wait on
a ``concurrent.futures.Future`` and get the same answer or the same failure.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from types import TracebackType
from typing import Unpack

import httpx

from .core import IntrospectorBase, IntrospectorOptions
from .errors import IntrospectionError
from .token_info import TokenInfo


class SyncIntrospector(IntrospectorBase):
    """Thread-safe RFC 7662 client with an exp-bounded cache and single flight.

    ``http_client`` is an ``httpx.Client`` you own (and close) yourself.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        http_client: httpx.Client | None = None,
        **options: Unpack[IntrospectorOptions],
    ) -> None:
        super().__init__(introspection_endpoint, **options)
        self._own_client = http_client is None
        self._client = http_client or httpx.Client(
            timeout=self.timeout, follow_redirects=False, trust_env=False
        )
        self._flights_lock = threading.Lock()
        self._inflight: dict[bytes, Future[TokenInfo]] = {}

    def introspect(self, token: str) -> TokenInfo:
        """What the authorization server says about ``token`` (maybe from the cache).

        Raises ``IntrospectionError`` when no answer could be had.
        """
        key = self._key(token)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        self._check_token(token)
        with self._flights_lock:
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                flight = self._inflight[key] = Future()
        if not leader:
            return flight.result()
        try:
            info = self._fetch(key, token)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(info)
            return info
        finally:
            with self._flights_lock:
                del self._inflight[key]

    def _fetch(self, key: bytes, token: str) -> TokenInfo:
        request = self._request(token)
        deadline = time.monotonic() + self.timeout
        try:
            response = self._client.send(request, stream=True)
            try:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if self._body_limit_exceeded(response.headers, len(body)):
                        raise self._too_large(key)
                    if time.monotonic() > deadline:
                        raise httpx.ReadTimeout("the answer took too long", request=request)
            finally:
                response.close()
        except IntrospectionError:
            raise
        except (httpx.HTTPError, OSError) as exc:
            raise self._transport_failed(key, exc) from None
        return self._accept(key, response.status_code, response.headers, bytes(body))

    def close(self) -> None:
        """Close the HTTP client if the introspector created it."""
        if self._own_client:
            self._client.close()

    def __enter__(self) -> SyncIntrospector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
