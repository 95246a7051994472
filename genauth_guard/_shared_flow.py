"""The flow's decisions about the shared cache level, with no I/O.

``SharedLevel`` holds what the introspection flow decides about the second
level (Redis): when to skip it (its own circuit breaker: a dead Redis is
skipped, never waited on), who asks the server when several processes miss
one token at once (the one that takes the lock leads; the others wait for
its answer, woken by a message or polling, and ask the server themselves
before their timeout), what a stored value is worth (an unreadable one is a
miss and is deleted), and what another process's message means.

``RecentInvalidations`` closes a race every cache with invalidation has: an
answer fetched *before* an invalidation must not be stored *after* it. The
flow notes when each key (or subject, or everything) was invalidated, and
an answer whose flight started earlier is returned to its callers but not
kept. The same record covers local ``invalidate`` and messages from other
processes; in Redis, a short tombstone written by the invalidation refuses
the late write (``SharedForget.hold``).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time

from ._cache import TokenCache, key_hint
from ._logging import SharedCacheLog, token_rejected
from ._resilience import CircuitBreaker
from ._shared import (
    POLL_SECONDS,
    SKIP_AFTER_FAILURES,
    SKIP_FOR_SECONDS,
    CacheKeys,
    EventKind,
    Follow,
    Hit,
    Lead,
    Unreadable,
)
from ._steps import (
    Flow,
    SharedDelete,
    SharedForget,
    SharedForgetSubject,
    SharedGet,
    SharedPut,
    SharedUnlock,
    SharedWait,
    Step,
)
from ._token_info import TokenInfo
from ._validation import ClaimRules
from .errors import SharedCacheError

_MAX_NOTED = 4096


class RecentInvalidations:
    """When keys and subjects were last invalidated, for as long as a flight can last.

    ``lock`` must be held around a check and the store it allows, and around
    a note and the removal it announces, so neither can slip between the
    other's two halves (the sync driver's listener runs in its own thread).
    """

    def __init__(self, horizon: float) -> None:
        self.lock = threading.Lock()
        self.horizon = horizon
        self._at: dict[bytes, float] = {}
        self._all = -math.inf

    def note(self, digest: bytes) -> None:
        now = time.monotonic()
        if len(self._at) >= _MAX_NOTED:
            old = now - self.horizon
            self._at = {d: t for d, t in self._at.items() if t > old}
            if len(self._at) >= _MAX_NOTED:  # a flood of invalidations: forget them all at once
                self.note_all()
        self._at[digest] = now

    def note_all(self) -> None:
        self._at.clear()
        self._all = time.monotonic()

    def since(self, started: float, *digests: bytes | None) -> bool:
        """True if any of ``digests`` (or everything) was invalidated at or after ``started``."""
        if self._all >= started:
            return True
        if not self._at:
            return False
        return any(d is not None and self._at.get(d, -math.inf) >= started for d in digests)


class SharedUnavailable(Exception):
    """A shared-cache step failed or was skipped (internal: the flow decides what follows)."""


class SharedLevel:
    """The shared level as the flow sees it: breaker, single flight across processes, events.

    ``lock_ttl``: the longest one introspection can take, plus a margin
    (a lock never outlives it; a tombstone lasts as long). ``wait_budget``:
    how long a process waits for another's answer before asking itself.
    """

    def __init__(
        self,
        *,
        cache: TokenCache,
        keys: CacheKeys,
        rules: ClaimRules,
        invalidations: RecentInvalidations,
        lock_ttl: float,
        wait_budget: float,
        require_userinfo: bool = False,
    ) -> None:
        self.cache = cache
        self.keys = keys
        self.rules = rules
        self.invalidations = invalidations
        self.lock_ttl = lock_ttl
        self.wait_budget = wait_budget
        self.require_userinfo = require_userinfo
        self.breaker = CircuitBreaker(SKIP_AFTER_FAILURES, SKIP_FOR_SECONDS)
        self.log = SharedCacheLog()

    def _call(self, step: Step) -> Flow:
        """Perform one step that reaches the shared cache, unless it is being skipped."""
        if self.breaker.admit() is not None:
            raise SharedUnavailable("skipped after repeated failures")
        try:
            outcome = yield step
        except Exception as exc:
            self.breaker.record_failure()
            self.log.failed(type(exc).__name__)
            raise SharedUnavailable(type(exc).__name__) from None
        except BaseException:
            self.breaker.release()
            raise
        self.breaker.record_success()
        self.log.worked()
        return outcome

    # ------------------------------------------------------------ lookups

    def answer(self, key: bytes, started: float) -> Flow:
        """``(answer, None)`` from the shared level, or ``(None, lock handle or None)``.

        A handle means this process leads: it asks the server and must
        ``store`` or ``release``. ``(None, None)``: ask the server without
        the lock (the level failed, or the leader took too long).
        """
        deadline: float | None = None
        deleted = False
        while True:
            try:
                found = yield from self._call(SharedGet(key, self.lock_ttl))
            except SharedUnavailable:
                return None, None
            if type(found) is Hit:
                return self._adopt(key, found, started), None
            if type(found) is Lead:
                return None, found.handle
            if type(found) is Unreadable:
                self.log.unreadable(key_hint(key))
                if deleted:  # written again at once: someone keeps writing junk
                    return None, None
                deleted = True
                try:
                    yield from self._call(SharedDelete(key))
                except SharedUnavailable:
                    return None, None
                continue
            if type(found) is not Follow:
                return None, None
            now = time.monotonic()
            if deadline is None:
                deadline = now + self.wait_budget
            if now >= deadline:
                return None, None
            yield SharedWait(key, min(deadline - now, POLL_SECONDS))

    def _adopt(self, key: bytes, hit: Hit, started: float) -> TokenInfo | None:
        """Keep a shared answer locally for the life it has left, with this one's rules."""
        if self.require_userinfo and hit.info.active and hit.info.userinfo is None:
            return None  # written by a process that does not read profiles: ask ourselves
        info, broken_rule = self.rules.apply(hit.info)
        if broken_rule is not None:
            token_rejected(key_hint(key), broken_rule)
        subject = self.keys.subject(hit.info.identity) if hit.info.identity else None
        with self.invalidations.lock:
            if self.invalidations.since(started, key, subject):
                return None  # invalidated while we looked: ask the server
            self.cache.put(key, info, max_lifetime=hit.seconds_left, subject=subject)
        return self.cache.get(key)

    # ------------------------------------------------------------ writes

    def store(
        self, key: bytes, answer: TokenInfo, ttl: float, subject: bytes | None, handle: str | None
    ) -> Flow:
        """Write the server's ``answer`` for ``ttl`` seconds (0: delete), then release the lock."""
        try:
            if ttl > 0:
                yield from self._call(SharedPut(key, answer, ttl, subject))
            else:
                yield from self._call(SharedDelete(key))
        except SharedUnavailable:
            pass
        yield from self.release(key, handle)

    def release(self, key: bytes, handle: str | None) -> Flow:
        """Give the lock back (after a failure: at once, so a waiter can ask instead)."""
        if handle is None:
            return
        with contextlib.suppress(SharedUnavailable):  # else it expires within lock_ttl
            yield from self._call(SharedUnlock(key, handle))

    def forget(self, key: bytes) -> Flow:
        """Tell every process to drop ``key``; ``SharedCacheError`` if that is not possible."""
        try:
            yield from self._call(SharedForget(key, self.lock_ttl))
        except SharedUnavailable as exc:
            raise _not_shared("answer", str(exc), self.cache.ttl) from None

    def forget_subject(self, subject: bytes) -> Flow:
        """Tell every process to drop every answer of ``subject`` (``SharedCacheError``)."""
        try:
            yield from self._call(SharedForgetSubject(subject, self.lock_ttl))
        except SharedUnavailable as exc:
            raise _not_shared("answers of this subject", str(exc), self.cache.ttl) from None

    # ------------------------------------------------------------ messages

    def on_event(self, kind: EventKind, digest: bytes) -> None:
        """What another process announced (or the subscription's state) means here."""
        if kind == "forget":
            with self.invalidations.lock:
                self.invalidations.note(digest)
                self.cache.discard(digest)
        elif kind == "forget_subject":
            with self.invalidations.lock:
                self.invalidations.note(digest)
                self.cache.discard_subject(digest)
        elif kind == "reset":  # listening again: anything may have been missed meanwhile
            with self.invalidations.lock:
                self.invalidations.note_all()
                self.cache.clear()
            self.log.resubscribed()
        elif kind == "down":
            self.log.failed("lost the subscription to invalidations")


def _not_shared(what: str, why: str, cache_ttl: float) -> SharedCacheError:
    return SharedCacheError(
        f"The {what} was dropped from this process's cache, but the shared cache could not "
        f"be reached ({why}): other processes may keep serving it until its cache lifetime "
        f"ends (at most cache_ttl={cache_ttl:g} s). Retry once the shared cache is back."
    )
