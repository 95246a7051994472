"""The second cache level's interface: how keys are made, what a port does, what it reports.

An introspector's local cache sits in front of an optional *shared* level
(``shared_cache=``, e.g. ``RedisCache``) that several processes use at once.
This module is the contract between the two sides and has no I/O:

- ``CacheKeys``: how a token and a subject become digests. The shared level
  chooses it (``SharedCache.cache_keys``), because its keys are what other
  people can read: with a key secret they are HMACs, so a reader of the
  shared store cannot test a guessed token. The local cache uses the same
  digests, so a message naming one (an invalidation) needs no translation.
- ``AsyncSharedPort`` / ``SyncSharedPort``: the I/O the runners perform for
  the flow's shared steps, ``async`` for ``Introspector``, blocking for
  ``SyncIntrospector``. ``SharedCache.async_port()`` / ``sync_port()`` give
  each introspector its own (raising ``ConfigurationError`` when the shared
  cache cannot serve that kind of driver).
- ``Hit`` / ``Unreadable`` / ``Lead`` / ``Follow``: what a lookup found.
- events (``SharedListener``): what other processes announce, delivered to
  the runner that subscribed.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from ._cache import cache_key, namespace
from ._token_info import TokenInfo
from .errors import ConfigurationError


class CacheKeys:
    """Digests for tokens and subjects, bound to an endpoint and a client (``bound_to``).

    Without a secret: SHA-256 over a namespace and the token (``cache_key``),
    as the local cache always did. With ``secret``: HMAC-SHA256 keyed by it,
    so the digests cannot be recomputed from a guessed token.
    """

    __slots__ = ("_secret", "_subject_ns", "_token_ns")

    def __init__(self, *bound_to: str, secret: bytes | None = None) -> None:
        self._token_ns = namespace(*bound_to)
        self._subject_ns = namespace(*bound_to, "subject")
        self._secret = secret

    def token(self, token: str) -> bytes:
        """The key of ``token``'s answer (never the token)."""
        if self._secret is None:
            return cache_key(self._token_ns, token)
        return hmac.digest(self._secret, self._token_ns + token.encode(), "sha256")

    def token_digest(self) -> tuple[bytes, bytes | None]:
        """What ``token`` digests: its namespace and the key secret (``None``: plain SHA-256).

        For the guards' cached path (``TokenCache.finder``), which digests a
        request's raw token bytes exactly as ``token`` digests the token.
        """
        return self._token_ns, self._secret

    def subject(self, identity: str) -> bytes:
        """The digest answers of the user ``identity`` are indexed by."""
        if self._secret is None:
            return cache_key(self._subject_ns, identity)
        return hmac.digest(self._secret, self._subject_ns + identity.encode(), "sha256")

    def __repr__(self) -> str:
        return f"CacheKeys(keyed={self._secret is not None})"


# ---------------------------------------------------------------- lookups


@dataclass(frozen=True, slots=True)
class Hit:
    """The shared level holds an answer (the server's, before claim rules) for this long."""

    info: TokenInfo
    seconds_left: float


@dataclass(frozen=True, slots=True)
class Unreadable:
    """The shared level holds a value that is no answer (corrupt, forged, foreign)."""


@dataclass(frozen=True, slots=True)
class Lead:
    """No answer; this process took the lock (``handle``) and asks the server."""

    handle: str


@dataclass(frozen=True, slots=True)
class Follow:
    """No answer; another process holds the lock and is asking the server."""


Lookup = Hit | Unreadable | Lead | Follow | None
"""``None``: no answer, and no lock was asked for."""

EventKind = Literal["forget", "forget_subject", "wake", "down", "reset"]
"""``forget``/``forget_subject``/``wake`` come with a digest; ``down`` (the
subscription is lost) and ``reset`` (it is back after a loss: invalidations
may have been missed) with ``b""``."""

SharedListener = Callable[[EventKind, bytes], None]


SKIP_AFTER_FAILURES: Final = 3
"""Shared-cache failures in a row after which it is skipped for a while (its breaker)."""

SKIP_FOR_SECONDS: Final = 2.0
"""How long it is skipped then; one call probes it afterwards."""

POLL_SECONDS: Final = 0.05
"""A process waiting for another's answer looks again this often, woken or not."""

LOCK_MARGIN_SECONDS: Final = 1.0
"""Added to the longest an introspection can take, for a lock's life."""


# ---------------------------------------------------------------- ports


class AsyncSharedPort(Protocol):
    """What ``Introspector`` does with the shared level (one port per introspector).

    Every method may raise; the flow turns that into a miss (lookups,
    writes) or a ``SharedCacheError`` (invalidations), never into a decision.
    """

    async def subscribe(self, listener: SharedListener) -> None:
        """Start listening (once); return when subscribed or after the timeout."""

    async def lookup(self, key: bytes, lock_ttl: float | None) -> Lookup:
        """The stored answer; without one, try to take the lock if ``lock_ttl`` is given."""

    async def put(self, key: bytes, info: TokenInfo, ttl: float, subject: bytes | None) -> None:
        """Store ``info`` for ``ttl`` seconds, indexed by ``subject``."""

    async def delete(self, key: bytes) -> None:
        """Drop the stored answer, without telling anyone."""

    async def unlock(self, key: bytes, handle: str) -> None:
        """Release the lock (if still ours) and wake the processes waiting for it."""

    async def forget(self, key: bytes, hold: float) -> None:
        """Drop the answer, refuse writes of it for ``hold`` seconds, tell every process."""

    async def forget_subject(self, subject: bytes, hold: float) -> None:
        """The same for every answer of one subject."""

    async def aclose(self) -> None:
        """Stop listening; close what the port opened."""


class SyncSharedPort(Protocol):
    """What ``SyncIntrospector`` does with the shared level: ``AsyncSharedPort``, blocking."""

    def subscribe(self, listener: SharedListener) -> None: ...
    def lookup(self, key: bytes, lock_ttl: float | None) -> Lookup: ...
    def put(self, key: bytes, info: TokenInfo, ttl: float, subject: bytes | None) -> None: ...
    def delete(self, key: bytes) -> None: ...
    def unlock(self, key: bytes, handle: str) -> None: ...
    def forget(self, key: bytes, hold: float) -> None: ...
    def forget_subject(self, subject: bytes, hold: float) -> None: ...
    def close(self) -> None: ...


class SharedCache(Protocol):
    """A second cache level that several processes share (``shared_cache=``).

    ``RedisCache`` is the one this package ships.
    """

    def cache_keys(self, *bound_to: str) -> CacheKeys:
        """How this level wants tokens and subjects turned into keys.

        ``bound_to``: the endpoint, the client id and what else must keep
        answers apart (signed answers); pass them on to ``CacheKeys``.
        """

    def async_port(self) -> AsyncSharedPort:
        """A port for one ``Introspector`` (``ConfigurationError`` if it cannot serve one)."""

    def sync_port(self) -> SyncSharedPort:
        """A port for one ``SyncIntrospector`` (``ConfigurationError`` if it cannot)."""


def check_shared_cache(value: object) -> SharedCache | None:
    """``value`` if it can be a shared cache (or is ``None``); else a ``ConfigurationError``."""
    if value is None:
        return None
    if all(
        callable(getattr(value, name, None)) for name in ("cache_keys", "async_port", "sync_port")
    ):
        return value  # type: ignore[return-value]
    raise ConfigurationError(
        f"shared_cache must be a RedisCache (or another SharedCache), not "
        f"{type(value).__name__}; build one with RedisCache('redis://host:6379/0')."
    )
