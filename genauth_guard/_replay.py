"""Remembering DPoP proofs already used (RFC 9449 11.1), bounded in size and in time.

A proof is remembered by a digest of its ``jti`` and its key's thumbprint
(``_dpop.replay_key``), never by the proof itself, from the moment it
passed its own checks and its token was found bound to its key: junk never
reaches the store. It is kept as long as its ``iat`` could still pass the
window (``dpop_max_age`` plus the allowed clock skew), then forgotten.

``LocalReplayStore`` is this process's memory: one lock makes "seen
before?" and "remember it" one step, so of eight copies of one proof sent
at once, exactly one passes. It holds at most ``maxsize`` proofs; when
full, the oldest is dropped and the store *narrows the window*: every
proof not newer than the dropped ones is refused from then on, so a
dropped proof can never be replayed (fail closed); fresh proofs, made
just before they are sent, still pass.

Several workers or hosts share what they saw through the introspector's
shared cache (``shared_cache=``): the introspector hands its guard the
cache's port (``replay_cache``), and if that port can ``add_once(key,
ttl)`` - a coroutine on ``Introspector``'s port, a plain method on
``SyncIntrospector``'s; on Redis ``SET key 1 NX PX ttl`` (``RedisCache``
does) - every proof is also recorded there, in one atomic step. A shared
cache whose ports cannot leaves replay detection to each process (logged
once at start-up); one that fails refuses the proof (503), never lets it
through.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections import OrderedDict
from typing import Final, Protocol

from ._dpop import DPoPProof
from ._logging import REPEAT_INTERVAL, logger

DEFAULT_MAXSIZE: Final = 100_000
"""Proofs one process remembers at most (about 17 MB: 170 bytes each)."""


class SyncReplayCache(Protocol):
    """Where ``GenAuthGuardWSGI`` remembers proofs across processes (a shared cache's port).

    ``add_once`` stores ``key`` for ``ttl`` seconds and returns ``True``, or
    returns ``False`` if it was already there, in one atomic step (Redis:
    ``SET key 1 NX PX ttl``). An exception means "could not tell": the
    guard refuses (503).
    """

    def add_once(self, key: bytes, ttl: float) -> bool: ...


class AsyncReplayCache(Protocol):
    """``SyncReplayCache`` for ``GenAuthGuard``: ``add_once`` is a coroutine."""

    async def add_once(self, key: bytes, ttl: float) -> bool: ...


def replay_cache_of(candidate: object, *, asynchronous: bool) -> object | None:
    """``candidate`` if its ``add_once`` fits the guard (a coroutine for ASGI), else ``None``."""
    add_once = getattr(candidate, "add_once", None)
    if not callable(add_once) or inspect.iscoroutinefunction(add_once) != asynchronous:
        return None
    return candidate


class LocalReplayStore:
    """This process's proofs, each kept ``window`` seconds, ``maxsize`` at most.

    ``window``: how long a proof's ``iat`` stays acceptable after the proof
    was recorded (``dpop_max_age`` + ``skew`` + 1 s). ``skew``: how far ahead
    of the clock an ``iat`` may lie; it sets the narrowed window when full.
    """

    def __init__(self, *, window: float, skew: float, maxsize: int = DEFAULT_MAXSIZE) -> None:
        self.window = window
        self.skew = skew
        self.maxsize = maxsize
        self.floor = float("-inf")
        """Proofs with ``iat`` at or below this were (maybe) dropped: refused."""
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self._warned = -REPEAT_INTERVAL

    def add(self, proof: DPoPProof, now: float | None = None) -> str | None:
        """Remember ``proof``; ``None`` if it is new, else why it is refused."""
        now = time.time() if now is None else now
        key = proof.replay_key
        with self._lock:
            seen = self._seen
            while seen:  # forget what no longer matters (oldest first)
                oldest, recorded = next(iter(seen.items()))
                if recorded + self.window > now:
                    break
                del seen[oldest]
            if key in seen:
                return "The DPoP proof was already used; make a new proof for every request."
            full = len(seen) >= self.maxsize
            if full:
                _, dropped = seen.popitem(last=False)
                self.floor = max(self.floor, dropped + self.skew)
            refused = proof.iat <= self.floor
            if not refused:
                seen[key] = now
        if full:
            self._full(now)
        if refused:
            return "The DPoP proof is too old for this busy server; make a fresh one."
        return None

    def _full(self, now: float) -> None:
        """WARNING once a minute: the window is narrower than configured."""
        monotonic = time.monotonic()
        loud = monotonic - self._warned >= REPEAT_INTERVAL
        if loud:
            self._warned = monotonic
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "DPoP replay store full (%d proofs): only proofs made in the last %.0f s pass; "
            "give the introspector a shared cache, or lower dpop_max_age",
            self.maxsize,
            max(0.0, now - self.floor),
        )

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)
