"""``Introspector``: the asyncio runner of the introspection flow.

The flow (``_flow``) decides; this module waits. The HTTP exchange goes
through a ``_transport.Transport`` made on first use on the running loop (so
the introspector can be built at import time, before any loop runs): aiohttp
when the ``genauth-guard[aiohttp]`` extra is installed, else a pooled
``httpx.AsyncClient``, or the ``http_client`` you pass. Concurrent requests
for one uncached token share a single flow: it runs as its own task, so a
request that gives up (client disconnect) does not cancel it for the others.
Calls are bounded by an ``asyncio.Semaphore`` (``max_concurrent_introspections``)
that only the flows take, so the limit counts calls, not waiting requests;
at most ``max_queued_introspections`` flows wait for a slot, each at most
``queue_timeout`` seconds: a burst is worked through at the transport's
speed, a flood is refused at once instead of piling up. With a shared
cache, the introspector listens to the other processes (invalidations,
"answer ready" wake-ups) from its first use of it, through its own port
(``_shared``), on the event loop it runs on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Unpack

import httpx

from ._base import IntrospectorBase
from ._logging import logger
from ._option_checks import check_http_client
from ._options import IntrospectorOptions
from ._resilience import SlotQueue
from ._shared import AsyncSharedPort, EventKind
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
from ._transport import Transport, default_choice, given_client
from ._verifier import plain_introspect


class Introspector(IntrospectorBase):
    """Async RFC 7662 client with an exp-bounded cache and single flight.

    Options: ``docs/configuration.md``; ``http_client`` is an
    ``httpx.AsyncClient`` you own (and close) yourself.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        http_client: httpx.AsyncClient | None = None,
        **options: Unpack[IntrospectorOptions],
    ) -> None:
        check_http_client(
            http_client,
            httpx.AsyncClient,
            "Introspector",
            "SyncIntrospector (the driver for WSGI and threads)",
        )
        super().__init__(introspection_endpoint, **options)
        self._transport_choice = (
            default_choice(self.timeout, self.max_concurrent_introspections)
            if http_client is None
            else given_client(http_client, self.timeout)
        )
        self._own_transport = http_client is None
        self._transport: Transport | None = None
        logger.debug(
            "introspector for %s: HTTP transport %s",
            self.introspection_endpoint,
            self._transport_choice.name,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._inflight: dict[bytes, asyncio.Task[TokenInfo]] = {}
        self._slots = asyncio.Semaphore(self.max_concurrent_introspections)
        self._queued = 0  # flows waiting for a slot
        self._queue = SlotQueue(
            self.max_concurrent_introspections, self.max_queued_introspections, self.queue_timeout
        )
        self._shared: AsyncSharedPort | None = (
            None if self.shared_cache is None else self.shared_cache.async_port()
        )
        self._wakers: dict[bytes, asyncio.Event] = {}
        self._listening: asyncio.Task[None] | None = None

    @property
    def replay_cache(self) -> object:
        """The shared cache's port, where guards remember DPoP proofs (``None`` without one).

        ``GenAuthGuard`` uses it if it can ``await add_once(key, ttl)``
        (``_replay.AsyncReplayCache``), so a proof used on one worker is
        refused on every other.
        """
        return self._shared

    @plain_introspect
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
            task = asyncio.ensure_future(self._run(self.flow.introspection(key, token)))
            self._inflight[key] = task
            task.add_done_callback(self._forget_flight(key))
        else:
            self._counters.coalesced += 1
        return await asyncio.shield(task)

    async def invalidate(self, token: str) -> None:
        """Forget the cached answer for ``token``, here and in every process sharing the cache.

        Raises ``SharedCacheError`` (after forgetting it here) when the
        shared cache could not be told.
        """
        key = self._key(token)
        self._bind_loop()
        await self._run(self.flow.forget(key))

    async def invalidate_subject(self, sub: str) -> None:
        """Forget every cached answer of the user ``sub``, here and in every process.

        ``sub`` is the identity the guard sees (``TokenInfo.identity``: the
        ``sub`` claim, or ``username`` when the server sends no ``sub``).
        Other users' answers stay. Raises ``SharedCacheError`` (after
        forgetting them here) when the shared cache could not be told.
        """
        subject = self._subject(sub)
        self._bind_loop()
        await self._run(self.flow.forget_subject(subject))

    async def revoke(self, token: str, token_type_hint: str | None = "access_token") -> None:
        """Revoke ``token`` at the authorization server (RFC 7009) and forget its answer.

        Raises ``RevocationError`` unless the server confirmed (200), and
        ``ConfigurationError`` if no revocation endpoint is configured, and
        ``SharedCacheError`` when it was revoked but the shared cache could
        not be told. An introspection of the token already in flight is
        waited for, so its answer (from before the revocation) cannot land in
        the cache after it.
        """
        key = self._key(token, "revoke")
        self._bind_loop()
        await self._run(self.flow.revocation(key, token, token_type_hint))
        flight = self._inflight.get(key)
        if flight is not None:
            await asyncio.wait([flight], timeout=self.timeout)
            await self._run(self.flow.forget(key))

    # ------------------------------------------------------------ running a flow

    async def _run(self, flow: Flow) -> Any:
        """Perform ``flow``'s steps until it returns; what it raises is raised here."""
        taken = 0.0  # when the call slot was taken (0: none held)
        try:
            step: Step = next(flow)
            while True:
                try:
                    outcome = await self._perform(step)
                    if type(step) is TakeSlot and outcome:
                        taken = time.monotonic()
                except BaseException as exc:  # the flow decides; a cancel passes through it
                    step = flow.throw(exc)
                else:
                    step = flow.send(outcome)
        except StopIteration as done:
            return done.value
        finally:
            if taken:
                self._slots.release()
                self._queue.observe(time.monotonic() - taken)

    async def _perform(self, step: Step) -> Any:
        if type(step) is Exchange:
            return await self._exchange(step.request)
        if type(step) is TakeSlot:
            return await self._take_slot(step.timeout)
        if type(step) is Wait:
            await asyncio.sleep(step.seconds)
            return None
        if type(step) is SharedWait:
            return await self._wait_for_wake(step.key, step.seconds)
        shared = self._shared
        assert shared is not None  # the flow only asks when there is one
        await self._listen(shared)
        if type(step) is SharedGet:
            if step.lock_ttl is not None:  # we may have to wait: hear the wake-up from now on
                self._wakers[step.key] = asyncio.Event()
            return await shared.lookup(step.key, step.lock_ttl)
        if type(step) is SharedPut:
            return await shared.put(step.key, step.info, step.ttl, step.subject)
        if type(step) is SharedUnlock:
            return await shared.unlock(step.key, step.handle)
        if type(step) is SharedDelete:
            return await shared.delete(step.key)
        if type(step) is SharedForget:
            return await shared.forget(step.key, step.hold)
        if type(step) is SharedForgetSubject:
            return await shared.forget_subject(step.subject, step.hold)
        raise TypeError(f"unknown flow step {step!r}")

    # ------------------------------------------------------------ the other processes

    async def _listen(self, shared: AsyncSharedPort) -> None:
        """Subscribe on first use (per event loop), before anything is cached from the level."""
        if self._listening is None:
            self._listening = asyncio.ensure_future(shared.subscribe(self._on_shared_event))
        if not self._listening.done():
            await asyncio.shield(self._listening)

    def _on_shared_event(self, kind: EventKind, digest: bytes) -> None:
        if kind == "wake":
            waker = self._wakers.get(digest)
            if waker is not None:
                waker.set()
        elif self.flow.shared is not None:
            self.flow.shared.on_event(kind, digest)

    async def _wait_for_wake(self, key: bytes, seconds: float) -> None:
        waker = self._wakers.get(key)
        if waker is None:
            waker = self._wakers[key] = asyncio.Event()
        try:
            async with asyncio.timeout(seconds):
                await waker.wait()
        except TimeoutError:
            pass

    async def _take_slot(self, wait_at_most: float) -> bool:
        """A slot now, or after waiting in the queue; ``False`` after ``wait_at_most``.

        A newcomer the queue would not serve in time, or a full queue, is
        refused at once (``SlotQueue``): waiting could only end in a 503 too,
        and a flood must not pile up waiters.
        """
        if not self._slots.locked():
            await self._slots.acquire()  # free: no waiting, no timer
            return True
        refusal = self._queue.refusal(self._queued)
        if refusal is not None:
            raise refusal
        self._queued += 1
        try:
            async with asyncio.timeout(wait_at_most):
                await self._slots.acquire()
        except TimeoutError:
            return False
        finally:
            self._queued -= 1
        return True

    async def _exchange(self, request: httpx.Request) -> Answer:
        """Send one request; the status, headers and (bounded) body, within ``timeout``."""
        async with asyncio.timeout(self.timeout):
            transport = self._transport or self._new_transport()
            return await transport.exchange(request, self.max_response_bytes)

    def _in_flight(self) -> int:
        return len(self._inflight)

    # ------------------------------------------------------------ the client and the loop

    def _forget_flight(self, key: bytes) -> Callable[[asyncio.Task[TokenInfo]], None]:
        def done(task: asyncio.Task[TokenInfo]) -> None:
            if self._inflight.get(key) is task:
                del self._inflight[key]
            self._wakers.pop(key, None)
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
            self._wakers = {}
            self._listening = None
            self._queued = 0
            if self._transport is not None:
                if self._own_transport:
                    self._transport.abandon()
                self._transport = None

    def _new_transport(self) -> Transport:
        self._transport = self._transport_choice.make()
        return self._transport

    @property
    def transport(self) -> str:
        """Which HTTP client sends the introspections (also logged at DEBUG at start-up)."""
        return self._transport_choice.name

    async def aclose(self) -> None:
        """Close the HTTP connections it made (not your ``http_client``); stop listening."""
        if self._shared is not None:
            self._listening = None
            await self._shared.aclose()
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._loop is asyncio.get_running_loop():
            await transport.aclose()
        elif self._own_transport:  # its connections belong to a loop that is gone
            transport.abandon()

    async def __aenter__(self) -> Introspector:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
