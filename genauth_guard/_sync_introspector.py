"""``SyncIntrospector``: the threaded driver (WSGI, gunicorn threads, scripts).

Same options, cache and protocol as ``Introspector`` (they live in
``core.IntrospectorBase``); only the waiting differs. Single flight across
threads: the first thread to miss a token makes the call, the others wait on
a ``concurrent.futures.Future`` and get the same answer or the same failure.
Calls are bounded by a ``threading.BoundedSemaphore``
(``max_concurrent_introspections``) that only the calling thread takes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_flights
from types import TracebackType
from typing import Unpack

import httpx

from ._base import IntrospectorBase
from ._deadline import send_with_deadline
from ._options import IntrospectorOptions
from ._token_info import TokenInfo
from .errors import ConfigurationError, IntrospectionError


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
        if http_client is not None and not isinstance(http_client, httpx.Client):
            raise ConfigurationError(
                f"SyncIntrospector needs an httpx.Client as http_client, not "
                f"{type(http_client).__name__}; pass httpx.Client(...), or give your "
                "httpx.AsyncClient to Introspector (the driver for ASGI apps)."
            )
        super().__init__(introspection_endpoint, **options)
        self._own_client = http_client is None
        # verify=True (httpx's default) on purpose: TLS is checked unless the
        # user passes a client of their own.
        self._client = http_client or httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=self._http_limits(),
        )
        self._slots = threading.BoundedSemaphore(self.max_concurrent_introspections)
        self._flights_lock = threading.Lock()
        self._inflight: dict[bytes, Future[TokenInfo]] = {}

    def introspect(self, token: str) -> TokenInfo:
        """What the authorization server says about ``token`` (maybe from the cache).

        Raises ``IntrospectionError`` when no answer could be had.
        """
        key, cached = self._lookup(token)
        if cached is not None:
            return cached
        if self._client.is_closed:
            raise RuntimeError(
                "This SyncIntrospector is closed (or its http_client is); build a new one."
            )
        with self._flights_lock:
            flight = self._inflight.get(key)
            leader = flight is None
            if flight is None:
                # A flight that ended between the lookup above and this lock has
                # cached its answer before leaving: take it instead of asking again.
                cached = self.cache.get(key)
                if cached is not None:
                    return cached
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
        """One introspection for the single flight: breaker, slot, attempts, outcome."""
        try:
            self.breaker.check()
            if not self._slots.acquire(timeout=self.queue_timeout):
                raise self._no_slot()
            try:
                info = self._attempts(key, token)
            except BaseException as exc:
                self.breaker.record(exc, key)
                raise
            finally:
                self._slots.release()
            self.breaker.record(None)
        except IntrospectionError as error:
            return self._give_up(key, error)
        return self._accept(key, info)

    def _attempts(self, key: bytes, token: str) -> TokenInfo:
        request = self._request(token)
        attempt = 1
        while True:
            try:
                return self._parse(key, *self._exchange(request))
            except Exception as exc:  # every failure of one attempt is judged, none escapes
                error, delay = self._judge(key, exc, attempt)
            if delay is None:
                raise error
            time.sleep(delay)
            attempt += 1

    def _exchange(self, request: httpx.Request) -> tuple[int, httpx.Headers, bytes]:
        """Send one request; the status, headers and (bounded) body, within ``timeout``.

        One overall deadline, connect to last byte (``deadline``): httpx's
        own timeouts restart with every byte, so a server trickling its
        headers would otherwise hold this thread, and every waiter, for hours.
        """

        def read(response: httpx.Response) -> tuple[int, httpx.Headers, bytes]:
            body = self._body(response)
            if not response.is_stream_consumed:
                for chunk in response.iter_raw():
                    if body.feed(chunk):
                        break
            return response.status_code, response.headers, body.body()

        return send_with_deadline(self._client, request, self.timeout, read)

    def revoke(self, token: str, token_type_hint: str | None = "access_token") -> None:
        """Revoke ``token`` at the authorization server (RFC 7009) and forget its answer.

        Raises ``RevocationError`` unless the server confirmed (200), and
        ``ConfigurationError`` if no revocation endpoint is configured. An
        introspection of the token already in flight is waited for, so its
        answer (from before the revocation) cannot land in the cache after it.
        """
        request = self._revocation_request(token, token_type_hint)
        try:
            answer = self._exchange(request)
        except (IntrospectionError, httpx.HTTPError, OSError) as exc:
            raise self._revocation_failed(exc) from None
        self._confirm_revocation(token, *answer)
        with self._flights_lock:
            flight = self._inflight.get(self._key(token))
        if flight is not None:
            wait_for_flights([flight], timeout=self.timeout)
            self.invalidate(token)

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
