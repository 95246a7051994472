"""The answer cache: TTL bounded by the token's own ``exp``, keyed by digests.

The cache rule (``cache_lifetime``): an active answer lives ``min(cache_ttl, exp - now)``,
an inactive one ``negative_cache_ttl`` (0: not kept), a failure never (it is
never offered to the cache). Keys are SHA-256 digests of the token bound to
the endpoint and client, so a raw token is never stored and two introspectors
cannot answer from each other's entries.

A hit costs one digest, one lock and one dict lookup, plus a clock read to
re-check ``exp``/``nbf``: the scope checks are never cached with the answer.

With ``keep_stale`` (the ``serve_stale_on_error`` option), an active answer
with an ``exp`` stays stored past its fresh life, up to its ``exp`` and never
beyond: ``get`` no longer returns it (the server is asked again), but
``get_stale`` does, for use only while the server is failing. An inactive
answer always removes the active entry of its token, stale-kept or not,
whatever the negative lifetime: a revoked token is never served again.

Active and inactive answers live in two stores of ``maxsize`` entries each.
A flood of random tokens fills the inactive store only, so it can never
push a good user's cached answer out.

Each entry may name its subject (a digest, like the keys): an index from
subject to keys, kept in step with expiry, eviction and removal, lets
``discard_subject`` drop every answer of one user without a scan.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

from cachetools import TLRUCache

from ._token_info import INACTIVE, TokenInfo

_Entry = tuple[TokenInfo, float, float]
"""(answer, fresh until, kept until), both times on the monotonic clock."""


def cache_lifetime(
    info: TokenInfo, wall_now: float, *, ttl: float, negative_ttl: float, leeway: float = 0.0
) -> float:
    """Seconds ``info`` may be kept from ``wall_now`` on (0 or less: not at all).

    The cache rule, for every level: an active answer never past its ``exp``
    nor longer than ``ttl``; an inactive one ``negative_ttl``.
    """
    if not info.active:
        return negative_ttl
    if info.exp is None:
        return ttl
    return min(ttl, info.exp + leeway - wall_now)


def namespace(*parts: str) -> bytes:
    """A digest prefix that binds cache keys to an endpoint and a client."""
    return hashlib.sha256("\0".join(("genauth-guard/1", *parts)).encode()).digest()


def cache_key(prefix: bytes, token: str) -> bytes:
    """The digest under which ``token``'s answer is stored (never the token)."""
    return hashlib.sha256(prefix + token.encode()).digest()


def key_hint(key: bytes) -> str:
    """A short, safe label of a cache key for log lines."""
    return key[:4].hex()


class _Store(TLRUCache[bytes, _Entry]):
    """A TLRU store that reports every entry it drops by itself (expiry, eviction)."""

    def __init__(self, maxsize: int, dropped: Callable[[bytes], None]) -> None:
        super().__init__(maxsize=maxsize, ttu=_kept_until, timer=time.monotonic)
        self._dropped = dropped

    def expire(self, time: Any = None) -> Any:
        expired = super().expire(time)
        for key, _ in expired:
            self._dropped(key)
        return expired

    def popitem(self) -> tuple[bytes, _Entry]:
        key, entry = super().popitem()
        self._dropped(key)
        return key, entry


class TokenCache:
    """Thread-safe TLRU cache of ``TokenInfo`` by key digest.

    ``ttl`` bounds active answers, ``negative_ttl`` inactive ones, ``maxsize``
    the number of entries (least recently used go first). ``leeway`` is the
    clock skew allowed when re-checking ``exp``/``nbf`` on a hit.
    ``keep_stale`` keeps active answers until their ``exp`` for ``get_stale``.
    """

    def __init__(
        self,
        *,
        maxsize: int = 10_000,
        ttl: float = 300.0,
        negative_ttl: float = 10.0,
        leeway: float = 0.0,
        keep_stale: bool = False,
    ) -> None:
        self.ttl = ttl
        self.negative_ttl = negative_ttl
        self.leeway = leeway
        self.keep_stale = keep_stale
        self.maxsize = maxsize
        self._lock = threading.Lock()
        self._data = _Store(maxsize, self._unindex)
        self._inactive = _Store(maxsize, self._unindex)
        self._subjects: dict[bytes, set[bytes]] = {}  # subject digest -> keys
        self._subject_of: dict[bytes, bytes] = {}  # key -> subject digest

    def lifetime(self, info: TokenInfo, wall_now: float) -> float:
        """Seconds ``info`` may be kept from ``wall_now`` on (``cache_lifetime``)."""
        return cache_lifetime(
            info, wall_now, ttl=self.ttl, negative_ttl=self.negative_ttl, leeway=self.leeway
        )

    def get(self, key: bytes) -> TokenInfo | None:
        """The cached answer for ``key``, re-checked against the clock; ``None`` on a miss."""
        with self._lock:
            try:
                info, fresh_until, _ = self._data[key]
            except KeyError:
                try:
                    info, fresh_until, _ = self._inactive[key]
                except KeyError:
                    return None
        if self.keep_stale and fresh_until <= time.monotonic():
            return None  # stale: only for get_stale
        if info.active and not info.is_usable_at(time.time(), self.leeway):
            return INACTIVE
        return info

    def get_stale(self, key: bytes) -> TokenInfo | None:
        """The last active answer for ``key`` if its ``exp`` still allows it, fresh or not.

        Only for when the server cannot be asked (``serve_stale_on_error``):
        a revocation since the answer goes unseen until the server is back.
        """
        with self._lock:
            try:
                info, _, _ = self._data[key]
            except KeyError:
                return None
        return info if info.is_usable_at(time.time(), self.leeway) else None

    def put(
        self,
        key: bytes,
        info: TokenInfo,
        *,
        max_lifetime: float | None = None,
        subject: bytes | None = None,
    ) -> None:
        """Keep ``info`` as long as the cache rule allows (maybe not at all).

        Whatever the lifetime, the new answer replaces the old one: an
        inactive answer that is not kept still removes the active entry.
        ``max_lifetime`` shortens it further (an answer from the shared cache
        keeps the life it has left there, not a fresh one). ``subject``: the
        digest ``discard_subject`` finds the entry by.
        """
        wall_now, monotonic_now = time.time(), time.monotonic()
        lifetime = self.lifetime(info, wall_now)
        if max_lifetime is not None:
            lifetime = min(lifetime, max_lifetime)
        fresh_until = kept_until = monotonic_now + lifetime
        if self.keep_stale and info.active and info.exp is not None:
            kept_until = monotonic_now + info.exp + self.leeway - wall_now
        store, other = (self._data, self._inactive) if info.active else (self._inactive, self._data)
        with self._lock:
            other.pop(key, None)
            self._unindex(key)
            if lifetime > 0:
                store[key] = (info, fresh_until, kept_until)
                if subject is not None and key in store:
                    self._subject_of[key] = subject
                    self._subjects.setdefault(subject, set()).add(key)
            else:
                store.pop(key, None)

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (after a revocation, or on the user's request)."""
        with self._lock:
            self._data.pop(key, None)
            self._inactive.pop(key, None)
            self._unindex(key)

    def discard_subject(self, subject: bytes) -> int:
        """Forget every answer stored with ``subject``; how many there were."""
        with self._lock:
            keys = self._subjects.pop(subject, set())
            for key in keys:
                del self._subject_of[key]
                self._data.pop(key, None)
                self._inactive.pop(key, None)
            return len(keys)

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._data.clear()
            self._inactive.clear()
            self._subjects.clear()
            self._subject_of.clear()

    def _unindex(self, key: bytes) -> None:
        """Take ``key`` out of the subject index (the lock is held)."""
        subject = self._subject_of.pop(key, None)
        if subject is not None:
            keys = self._subjects[subject]
            keys.discard(key)
            if not keys:
                del self._subjects[subject]

    def __len__(self) -> int:
        with self._lock:
            self._data.expire()
            self._inactive.expire()
            return len(self._data) + len(self._inactive)


def _kept_until(_key: bytes, entry: _Entry, _monotonic_now: float) -> float:
    return entry[2]
