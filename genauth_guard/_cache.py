"""The answer cache: TTL bounded by the token's own ``exp``, keyed by digests.

The cache rule (``cache_lifetime``): an active answer lives ``min(cache_ttl, exp - now)``,
an inactive one ``negative_cache_ttl`` (0: not kept), a failure never (it is
never offered to the cache). Keys are SHA-256 digests of the token bound to
the endpoint and client, so a raw token is never stored and two introspectors
cannot answer from each other's entries.

A hit costs one digest and one dict lookup, no lock, plus two clock reads:
the monotonic one for the TTL, the wall clock to re-check ``exp``/``nbf``
(the scope checks are never cached with the answer). The entries and their
stores are in ``_cache_store``.

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
import hmac
import math
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Protocol

from ._cache_store import CachedAnswer, Store, Subject
from ._token_info import INACTIVE, TokenInfo


class HitCounter(Protocol):
    """Where the guards' hit path counts its hits (the introspector's ``Counters``)."""

    hits: int


__all__ = ["CachedAnswer", "TokenCache", "cache_key", "cache_lifetime", "key_hint", "namespace"]


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


class TokenCache:
    """Thread-safe LRU cache of answers by key digest, each entry bounded by its own times.

    ``ttl`` bounds active answers, ``negative_ttl`` inactive ones, ``maxsize``
    the number of entries per kind (least recently used go first). ``leeway``
    is the clock skew allowed when re-checking ``exp``/``nbf`` on a hit.
    ``keep_stale`` keeps active answers until their ``exp`` for ``get_stale``.

    A hit takes no lock: a dict read is atomic in CPython, and the entry it
    returns is never changed, only replaced. Writers (``put``, ``discard``,
    ``discard_subject``, ``clear``) take the lock.
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
        self._active = Store(maxsize, self._unindex)
        self._inactive = Store(maxsize, self._unindex)
        self._subjects: dict[bytes, Subject] = {}  # subject digest -> its keys
        # Bound once: the hit path is a handful of C calls.
        self._active_get = self._active.entries.get
        self._active_touch = self._active.entries.move_to_end

    def lifetime(self, info: TokenInfo, wall_now: float) -> float:
        """Seconds ``info`` may be kept from ``wall_now`` on (``cache_lifetime``)."""
        return cache_lifetime(
            info, wall_now, ttl=self.ttl, negative_ttl=self.negative_ttl, leeway=self.leeway
        )

    def fresh(self, key: bytes) -> CachedAnswer | None:
        """The entry of a fresh active answer usable now, or ``None`` (then ask ``get``).

        One dict read, two clock reads, the ``exp`` (and ``nbf``) re-check,
        the LRU touch. Anything else (an inactive answer, an expired one) is
        ``None`` here and decided by ``get``.
        """
        entry = self._active_get(key)
        if entry is None or time.monotonic() >= entry.fresh_until:
            return None
        now = time.time()
        if now >= entry.not_after:
            return None
        nbf = entry.info.nbf
        if nbf is not None and now < nbf - self.leeway:
            return None
        try:  # noqa: SIM105 (suppress() would cost more than the rest of a hit)
            self._active_touch(key)
        except KeyError:  # discarded meanwhile: this answer was still good when read
            pass
        return entry

    def finder(
        self, prefix: bytes, secret: bytes | None, counters: HitCounter, max_length: int
    ) -> Callable[[bytes], CachedAnswer | None]:
        """``fresh`` by the token's raw bytes, digest included, as one call: the guards' hit path.

        The same steps as the key (SHA-256 of ``prefix`` and the token, or
        HMAC-SHA256 keyed by ``secret``: ``CacheKeys.token``) then ``fresh``,
        with every name bound in a closure: on a cached request the guard's
        whole cost is a few microseconds, and each Python call and attribute
        lookup is a visible share of it. A hit is counted in ``counters``;
        bytes longer than ``max_length`` are never looked up.
        """
        active_get, touch, leeway = self._active_get, self._active_touch, self.leeway
        sha256, hmac_digest = hashlib.sha256, hmac.digest

        def find(raw: bytes) -> CachedAnswer | None:
            if len(raw) > max_length:
                return None
            key = (
                sha256(prefix + raw).digest()
                if secret is None
                else hmac_digest(secret, prefix + raw, "sha256")
            )
            entry = active_get(key)
            # The clocks are looked up on each call, not bound: a test that
            # moves time.time (freezegun) must see cached tokens expire too.
            if entry is None or time.monotonic() >= entry.fresh_until:
                return None
            now = time.time()
            if now >= entry.not_after:
                return None
            nbf = entry.info.nbf
            if nbf is not None and now < nbf - leeway:
                return None
            try:  # noqa: SIM105
                touch(key)
            except KeyError:
                pass
            counters.hits += 1
            return entry

        return find

    def get(self, key: bytes) -> TokenInfo | None:
        """The cached answer for ``key``, re-checked against the clock; ``None`` on a miss.

        An active answer whose ``exp`` has passed (or whose ``nbf`` is ahead)
        is ``INACTIVE``; one past its fresh life is a miss (kept, with
        ``keep_stale``, for ``get_stale`` only).
        """
        entry = self.fresh(key)
        if entry is not None:
            return entry.info
        store = self._active
        entry = store.entries.get(key)
        if entry is None:
            store = self._inactive
            entry = store.entries.get(key)
            if entry is None:
                return None
        if time.monotonic() >= entry.fresh_until:
            return None
        with suppress(KeyError):
            store.entries.move_to_end(key)
        info = entry.info
        if info.active and not info.is_usable_at(time.time(), self.leeway):
            return INACTIVE
        return info

    def get_stale(self, key: bytes) -> TokenInfo | None:
        """The last active answer for ``key`` if its ``exp`` still allows it, fresh or not.

        Only for when the server cannot be asked (``serve_stale_on_error``):
        a revocation since the answer goes unseen until the server is back.
        """
        entry = self._active_get(key)
        if entry is None or time.monotonic() >= entry.kept_until:
            return None
        info = entry.info
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
        not_after = math.inf
        if info.active and info.exp is not None:
            not_after = info.exp + self.leeway
            if self.keep_stale:
                kept_until = monotonic_now + not_after - wall_now
        store = self._active if info.active else self._inactive
        with self._lock:
            self._remove(key)
            if lifetime > 0:
                entry = CachedAnswer(info, fresh_until, kept_until, not_after)
                store.add(key, entry, monotonic_now)
                if subject is not None:
                    indexed = self._subjects.get(subject)
                    if indexed is None:
                        indexed = self._subjects[subject] = Subject(subject)
                    indexed.keys.add(key)
                    entry.subject = indexed

    def discard(self, key: bytes) -> None:
        """Forget ``key`` (after a revocation, or on the user's request)."""
        with self._lock:
            self._remove(key)

    def discard_subject(self, subject: bytes) -> int:
        """Forget every answer stored with ``subject``; how many (not yet expired) there were."""
        now = time.monotonic()
        with self._lock:
            indexed = self._subjects.pop(subject, None)
            if indexed is None:
                return 0
            live = 0
            for key in indexed.keys:
                for store in (self._active, self._inactive):
                    entry = store.entries.pop(key, None)
                    if entry is not None and entry.kept_until > now:
                        live += 1
            return live

    def clear(self) -> None:
        """Forget every answer."""
        with self._lock:
            self._active.entries.clear()
            self._inactive.entries.clear()
            self._subjects.clear()

    def _remove(self, key: bytes) -> None:
        """Drop ``key`` from both stores and the index (the lock is held)."""
        for store in (self._active, self._inactive):
            entry = store.entries.pop(key, None)
            if entry is not None:
                self._unindex(key, entry)

    def _unindex(self, key: bytes, entry: CachedAnswer) -> None:
        """Take a dropped entry out of the subject index (the lock is held)."""
        indexed = entry.subject
        if indexed is not None:
            indexed.keys.discard(key)
            if not indexed.keys and self._subjects.get(indexed.digest) is indexed:
                del self._subjects[indexed.digest]

    def __len__(self) -> int:
        """Answers held that have not expired (drops the expired ones first)."""
        now = time.monotonic()
        with self._lock:
            return self._active.live(now) + self._inactive.live(now)
