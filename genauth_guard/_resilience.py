"""Retry and circuit-breaker decisions, with no I/O: the drivers only do the waiting.

Both introspectors ask ``RetryPolicy`` whether a failed attempt deserves
another and how long to sleep first, and ask ``CircuitBreaker`` whether to
call the authorization server at all. Sleeping (``asyncio.sleep`` or
``time.sleep``) and bounding concurrency (``asyncio.Semaphore`` or
``threading.BoundedSemaphore``) are all that differ between them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

import httpx

from .errors import (
    AuthorizationServerUnavailable,
    ClientAuthenticationError,
    IntrospectionError,
    InvalidIntrospectionResponse,
)

RETRYABLE_STATUSES: Final = frozenset({502, 503, 504})
"""Gateway and overload answers: a second attempt, maybe on another instance, may work."""

_CONNECTION_FAILURES: Final = (
    httpx.ConnectError,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,
    OSError,
)


def is_connection_failure(exc: BaseException) -> bool:
    """True for a refused, reset or dropped connection; false for timeouts.

    A timeout is not retried: the server already had its full ``timeout``,
    and asking a slow server twice doubles both the wait and its load.
    Introspection is a read, so repeating a request that may have reached
    the server is safe.
    """
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return False
    return isinstance(exc, _CONNECTION_FAILURES)


def counts_against_server(error: IntrospectionError) -> bool:
    """True when ``error`` says the server as a whole is failing (not this one request).

    Unreachable, slow, 5xx, 429, garbage answers and rejected client
    credentials repeat for every token; a 4xx about one request may not, and
    must not let one caller's odd tokens open the breaker for everybody.
    """
    return isinstance(
        error,
        AuthorizationServerUnavailable | InvalidIntrospectionResponse | ClientAuthenticationError,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many times a failed introspection is repeated, and after how long.

    ``retries`` extra attempts (0: none) follow a connection failure or a
    502/503/504, never a 4xx, a timeout or a malformed answer. Attempt ``n``
    waits a random time in ``[b/2, b]`` with ``b = backoff * 2**(n-1)``: the
    jitter keeps many guards from retrying in lockstep. A ``Retry-After``
    longer than that wait means the server asked for a pause; then we fail
    at once (passing its ``Retry-After`` on) instead of retrying early.
    """

    retries: int = 1
    backoff: float = 0.1

    def delay(
        self, attempt: int, error: IntrospectionError, *, connection_failed: bool
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up."""
        if attempt > self.retries:
            return None
        if not connection_failed and error.status_code not in RETRYABLE_STATUSES:
            return None
        ceiling = self.backoff * 2 ** (attempt - 1)
        wait = random.uniform(ceiling / 2, ceiling)
        if error.retry_after is not None:
            if error.retry_after > ceiling:
                return None
            wait = max(wait, error.retry_after)
        return wait

    def worst_case(self, timeout: float) -> float:
        """Upper bound of one introspection's duration, retries and waits included."""
        return (self.retries + 1) * timeout + self.backoff * float(2**self.retries - 1)


BreakerState = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Stops calling a server that keeps failing, and probes it again later.

    Closed: calls go through; ``threshold`` failures in a row (see
    ``counts_against_server``) open it. A failure that may be about one
    token (a 5xx, a garbage answer, a timeout) counts once per distinct
    token in the streak: one caller repeating one token the server chokes
    on cannot open the breaker for everybody. A failure that cannot be
    about the token (connection refused or reset, 429: ``server_wide``)
    counts every time. Open: every call is refused at once
    for ``cooldown`` seconds, so requests get their 503 now instead of
    queueing on a dead server. Half-open: one call, the probe, goes through;
    its success closes the breaker, its failure opens it for another
    cool-down. Thread-safe and loop-agnostic (a lock and a clock), so both
    drivers share the implementation; never consulted on a cache hit.
    ``threshold=0`` disables it (it never opens).
    """

    def __init__(
        self, threshold: int, cooldown: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._failed_keys: set[bytes] = set()  # tokens of the streak, at most ``threshold``
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open`` or ``half-open`` (the cool-down is over, a probe may go)."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self._clock() >= self._opened_at + self.cooldown:
                return "half-open"
            return "open"

    def admit(self) -> float | None:
        """``None`` if a call may go now; else the seconds until one may.

        After the cool-down the first caller becomes the probe; everybody
        else is refused until the probe reports (``record_*``) or gives up
        (``release``).
        """
        if self._opened_at is None:  # closed: the common case, lock-free
            return None
        with self._lock:
            if self._opened_at is None:
                return None
            remaining = self._opened_at + self.cooldown - self._clock()
            if remaining > 0:
                return remaining
            if self._probing:
                return self.cooldown
            self._probing = True
            return None

    def record_success(self) -> None:
        """The server answered: close the breaker and forget past failures."""
        if self._failures == 0 and self._opened_at is None:  # the common case, lock-free
            return
        with self._lock:
            self._failures = 0
            self._failed_keys.clear()
            self._opened_at = None
            self._probing = False

    def record_failure(self, key: bytes | None = None) -> None:
        """The server failed: count it; open (again) at the threshold or after a probe.

        ``key``: the token digest the failure may be about (counted once per
        streak), or ``None`` for a server-wide failure (counted every time).
        """
        if not self.threshold:
            return
        with self._lock:
            if key is None or key not in self._failed_keys:
                self._failures += 1
                if key is not None:
                    self._failed_keys.add(key)
            if self._probing or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._probing = False
                self._failed_keys.clear()

    def release(self) -> None:
        """An admitted call ended without an answer about the server (cancelled, no slot)."""
        with self._lock:
            self._probing = False

    def check(self) -> None:
        """Raise the ``circuit_open`` failure unless a call may go now (see ``admit``)."""
        wait = self.admit()
        if wait is not None:
            raise circuit_open(self, wait)

    def record(self, outcome: BaseException | None, key: bytes | None = None) -> None:
        """Report how an admitted call ended: ``None`` for an answer, else what was raised.

        Only failures that say the server is failing count; anything else
        (a 4xx about this request, a cancellation) just frees the probe.
        ``key`` is the digest of the token asked about (see ``record_failure``).
        """
        if outcome is None:
            self.record_success()
        elif isinstance(outcome, IntrospectionError) and counts_against_server(outcome):
            self.record_failure(None if outcome.server_wide else key)
        else:
            self.release()


def circuit_open(breaker: CircuitBreaker, wait: float) -> AuthorizationServerUnavailable:
    """The failure for a call the open breaker refused; ``retry_after`` is ``wait``."""
    return AuthorizationServerUnavailable(
        f"The authorization server failed {breaker.threshold} times in a row, so "
        f"introspection is paused for {breaker.cooldown:g} s (circuit breaker); requests "
        "are answered 503 meanwhile. Check the authorization server; the guard probes it "
        "again after the pause.",
        retry_after=wait,
    )


def too_busy(limit: int, queue_timeout: float) -> AuthorizationServerUnavailable:
    """The failure for a request that found no free introspection slot in time."""
    return AuthorizationServerUnavailable(
        f"{limit} introspections were already in flight and none finished within "
        f"queue_timeout={queue_timeout:g} s; the authorization server is too slow for the "
        "load. Raise max_concurrent_introspections or queue_timeout, or find out why it is slow."
    )


class SlotQueue:
    """Who may wait for a call slot: a bounded number, and only if a slot is likely in time.

    A request that finds every slot taken may wait up to ``queue_timeout``
    seconds. Whether it will get one in time depends on how fast the
    transport and the server work through the calls ahead of it, so the
    queue learns that: it keeps a moving average of how long a call holds
    its slot (by Little's law, ``hold / slots`` is the time between two
    slots freeing up), and a newcomer whose expected wait
    (``(waiting + 1) * hold / slots``) is clearly beyond ``queue_timeout``
    (``MARGIN`` times it: an estimate is only an estimate) is refused at
    once, not after waiting for nothing. A cold start's burst is admitted
    as far as the transport can work it through in ``queue_timeout`` (with
    no calls measured yet, everybody may wait); a junk flood against a slow
    server is turned away at the door. ``max_queued`` bounds the waiters
    whatever the estimate says: memory stays bounded. No I/O and no lock:
    a lost update of the average under threads only blurs an estimate.
    """

    FALL: Final = 0.5  # a faster call pulls the average down at once...
    RISE: Final = 0.1  # ...a slower one only nudges it up
    MARGIN: Final = 2.0  # refused only when clearly hopeless: twice queue_timeout

    def __init__(self, slots: int, max_queued: int, queue_timeout: float) -> None:
        self.slots = slots
        self.max_queued = max_queued
        self.queue_timeout = queue_timeout
        self.hold = 0.0  # seconds a call holds its slot, moving average; 0: not known yet

    def expected_wait(self, waiting: int) -> float:
        """Seconds a newcomer behind ``waiting`` others would likely wait for a slot."""
        return (waiting + 1) * self.hold / self.slots

    def refusal(self, waiting: int) -> AuthorizationServerUnavailable | None:
        """The failure for a newcomer behind ``waiting`` others, or ``None``: it may wait."""
        if waiting >= self.max_queued:
            return queue_full(self.slots, self.max_queued)
        if self.expected_wait(waiting) > self.MARGIN * self.queue_timeout:
            return queue_too_slow(self.slots, self.queue_timeout)
        return None

    def observe(self, held: float) -> None:
        """A call gave its slot back after holding it ``held`` seconds.

        The average leans optimistic: refusing a request that would have been
        served is the costly mistake (a user sees a 503 for nothing), while
        admitting one too many costs at most a wait of ``queue_timeout``. The
        first calls of a cold start are the slowest (new connections, a
        loop busy with arrivals), and must not shut the door on the burst.
        """
        hold = self.hold
        if hold == 0.0:
            self.hold = held
        else:
            self.hold = hold + (self.FALL if held < hold else self.RISE) * (held - hold)


def queue_too_slow(limit: int, queue_timeout: float) -> AuthorizationServerUnavailable:
    """The failure for a request that would not get a slot within ``queue_timeout``.

    The text is the same for every such request (no counts in it): a flood
    is one warning a minute in the log, not one per request.
    """
    return AuthorizationServerUnavailable(
        f"{limit} introspections were in flight and, at the speed calls finish now, too "
        f"many were waiting for this one to get a slot within queue_timeout={queue_timeout:g} "
        "s, so it was refused at once. The authorization server is too slow for the new "
        "tokens arriving: raise max_concurrent_introspections if it can take more calls at "
        "once, or find out why it is slow."
    )


def queue_full(limit: int, queued: int) -> AuthorizationServerUnavailable:
    """The failure for a request that found every slot taken and the queue full."""
    return AuthorizationServerUnavailable(
        f"{limit} introspections were in flight and max_queued_introspections={queued} "
        "more waiting for a slot, so this one was refused at once; the authorization "
        "server cannot keep up with the new tokens arriving. Raise max_queued_introspections "
        "or max_concurrent_introspections if the server can take more, or find out why "
        "so many new tokens arrive."
    )
