"""``SyncIntrospector``: the threaded runner of the introspection flow (WSGI, gunicorn threads).

The flow (``_flow``) decides, exactly as for ``Introspector``; only the
waiting differs. Single flight across threads: the first thread to miss a
token runs the flow, the others wait on a ``concurrent.futures.Future`` and
get the same answer or the same failure. Calls are bounded by a
``threading.BoundedSemaphore`` (``max_concurrent_introspections``). Every
call has one overall deadline, connect to last byte (``_deadline``): httpx's
own timeouts restart with every byte, so a server trickling its headers
would otherwise hold a thread, and every waiter, for hours.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import wait as wait_for_flights
from types import TracebackType
from typing import Any, Unpack

import httpx

from ._base import IntrospectorBase
from ._deadline import send_with_deadline
from ._option_checks import check_http_client
from ._options import IntrospectorOptions
from ._protocol import BoundedBody
from ._resilience import SlotQueue
from ._shared import EventKind, SyncSharedPort
from ._steps import (
    Answer,
    Exchange,
    Flow,
    SharedDelete,
    SharedForget,
    SharedForgetSubject,
    SharedGet,
    SharedPut,
    SharedUnlock,
    SharedWait,
    Step,
    TakeSlot,
    Wait,
)
from ._token_info import TokenInfo
from ._verifier import plain_introspect


class SyncIntrospector(IntrospectorBase):
    """Thread-safe RFC 7662 client with an exp-bounded cache and single flight.

    Options: ``docs/configuration.md``; ``http_client`` is an ``httpx.Client``
    you own (and close) yourself.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        http_client: httpx.Client | None = None,
        **options: Unpack[IntrospectorOptions],
    ) -> None:
        check_http_client(
            http_client, httpx.Client, "SyncIntrospector", "Introspector (the driver for ASGI apps)"
        )
        super().__init__(introspection_endpoint, **options)
        self._own_client = http_client is None
        # verify=True (httpx's default) on purpose: TLS is checked unless the
        # user passes a client of their own.
        self._client = http_client or httpx.Client(
            timeout=self.timeout,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=self.max_concurrent_introspections),
        )
        self._slots = threading.BoundedSemaphore(self.max_concurrent_introspections)
        self._queue_lock = threading.Lock()
        self._queued = 0  # threads waiting for a slot
        self._queue = SlotQueue(
            self.max_concurrent_introspections, self.max_queued_introspections, self.queue_timeout
        )
        self._flights_lock = threading.Lock()
        self._inflight: dict[bytes, Future[TokenInfo]] = {}
        self._shared: SyncSharedPort | None = (
            None if self.shared_cache is None else self.shared_cache.sync_port()
        )
        self._wakers: dict[bytes, threading.Event] = {}  # under _flights_lock
        self._listen_lock = threading.Lock()
        self._listening = 0  # the pid that subscribed: a forked worker subscribes anew

    @property
    def replay_cache(self) -> object:
        """The shared cache's port, where guards remember DPoP proofs (``None`` without one).

        ``GenAuthGuardWSGI`` uses it if it can ``add_once(key, ttl)``
        (``_replay.SyncReplayCache``), so a proof used on one worker is
        refused on every other.
        """
        return self._shared

    @plain_introspect
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
                    self._counters.hits += 1
                    return cached
                flight = self._inflight[key] = Future()
        if not leader:
            self._counters.coalesced += 1
            return flight.result()
        try:
            info: TokenInfo = self._run(self.flow.introspection(key, token))
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        else:
            flight.set_result(info)
            return info
        finally:
            with self._flights_lock:
                del self._inflight[key]
                self._wakers.pop(key, None)

    def invalidate(self, token: str) -> None:
        """Forget the cached answer for ``token``, here and in every process sharing the cache.

        Raises ``SharedCacheError`` (after forgetting it here) when the
        shared cache could not be told.
        """
        self._run(self.flow.forget(self._key(token)))

    def invalidate_subject(self, sub: str) -> None:
        """Forget every cached answer of the user ``sub``, here and in every process.

        ``sub`` is the identity the guard sees (``TokenInfo.identity``: the
        ``sub`` claim, or ``username`` when the server sends no ``sub``).
        Other users' answers stay. Raises ``SharedCacheError`` (after
        forgetting them here) when the shared cache could not be told.
        """
        self._run(self.flow.forget_subject(self._subject(sub)))

    def revoke(self, token: str, token_type_hint: str | None = "access_token") -> None:
        """Revoke ``token`` at the authorization server (RFC 7009) and forget its answer.

        Raises ``RevocationError`` unless the server confirmed (200), and
        ``ConfigurationError`` if no revocation endpoint is configured, and
        ``SharedCacheError`` when it was revoked but the shared cache could
        not be told. An introspection of the token already in flight is
        waited for, so its answer (from before the revocation) cannot land in
        the cache after it.
        """
        key = self._key(token, "revoke")
        self._run(self.flow.revocation(key, token, token_type_hint))
        with self._flights_lock:
            flight = self._inflight.get(key)
        if flight is not None:
            wait_for_flights([flight], timeout=self.timeout)
            self._run(self.flow.forget(key))

    def _in_flight(self) -> int:
        return len(self._inflight)

    # ------------------------------------------------------------ running a flow

    def _run(self, flow: Flow) -> Any:
        """Perform ``flow``'s steps until it returns; what it raises is raised here."""
        taken = 0.0  # when the call slot was taken (0: none held)
        try:
            step: Step = next(flow)
            while True:
                try:
                    outcome = self._perform(step)
                    if type(step) is TakeSlot and outcome:
                        taken = time.monotonic()
                except BaseException as exc:  # the flow decides what a failure means
                    step = flow.throw(exc)
                else:
                    step = flow.send(outcome)
        except StopIteration as done:
            return done.value
        finally:
            if taken:
                self._slots.release()
                self._queue.observe(time.monotonic() - taken)

    def _perform(self, step: Step) -> Any:
        if type(step) is Exchange:
            return self._exchange(step.request)
        if type(step) is TakeSlot:
            return self._take_slot(step.timeout)
        if type(step) is Wait:
            time.sleep(step.seconds)
            return None
        if type(step) is SharedWait:
            return self._wait_for_wake(step.key, step.seconds)
        shared = self._shared
        assert shared is not None  # the flow only asks when there is one
        self._listen(shared)
        if type(step) is SharedGet:
            if step.lock_ttl is not None:  # we may have to wait: hear the wake-up from now on
                with self._flights_lock:
                    self._wakers[step.key] = threading.Event()
            return shared.lookup(step.key, step.lock_ttl)
        if type(step) is SharedPut:
            return shared.put(step.key, step.info, step.ttl, step.subject)
        if type(step) is SharedUnlock:
            return shared.unlock(step.key, step.handle)
        if type(step) is SharedDelete:
            return shared.delete(step.key)
        if type(step) is SharedForget:
            return shared.forget(step.key, step.hold)
        if type(step) is SharedForgetSubject:
            return shared.forget_subject(step.subject, step.hold)
        raise TypeError(f"unknown flow step {step!r}")

    # ------------------------------------------------------------ the other processes

    def _listen(self, shared: SyncSharedPort) -> None:
        """Subscribe on first use in this process, before anything is cached from the level.

        Per process: gunicorn may fork workers from a master that already
        used the introspector, and a listening thread does not survive a fork.
        """
        pid = os.getpid()
        if self._listening == pid:
            return
        with self._listen_lock:
            if self._listening != pid:
                shared.subscribe(self._on_shared_event)
                self._listening = pid

    def _on_shared_event(self, kind: EventKind, digest: bytes) -> None:
        """Called from the port's listening thread."""
        if kind == "wake":
            with self._flights_lock:
                waker = self._wakers.get(digest)
            if waker is not None:
                waker.set()
        elif self.flow.shared is not None:
            self.flow.shared.on_event(kind, digest)

    def _wait_for_wake(self, key: bytes, seconds: float) -> None:
        with self._flights_lock:
            waker = self._wakers.get(key)
            if waker is None:
                waker = self._wakers[key] = threading.Event()
        waker.wait(seconds)

    def _take_slot(self, wait_at_most: float) -> bool:
        """A slot now, or after waiting in the bounded queue (see ``Introspector._take_slot``)."""
        if self._slots.acquire(blocking=False):
            return True
        with self._queue_lock:
            refusal = self._queue.refusal(self._queued)
            if refusal is not None:
                raise refusal
            self._queued += 1
        try:
            return self._slots.acquire(timeout=wait_at_most)
        finally:
            with self._queue_lock:
                self._queued -= 1

    def _exchange(self, request: httpx.Request) -> Answer:
        """Send one request; the status, headers and (bounded) body, within ``timeout``."""

        def read(response: httpx.Response) -> Answer:
            body = BoundedBody.for_response(response, self.max_response_bytes)
            if not response.is_stream_consumed:
                for chunk in response.iter_raw():
                    if body.feed(chunk):
                        break
            return Answer(response.status_code, response.headers, body.body())

        return send_with_deadline(self._client, request, self.timeout, read)

    def close(self) -> None:
        """Close the HTTP client if the introspector created it; stop listening to the others."""
        if self._shared is not None:
            with self._listen_lock:
                self._listening = 0
                self._shared.close()
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
