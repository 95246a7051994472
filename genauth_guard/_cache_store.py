"""What ``TokenCache`` keeps: entries that carry their own times, in LRU stores.

An entry knows when it stops being fresh and when it must go, so reading one
needs no lock and no structure beside the dict it sits in. A store is an
``OrderedDict`` in least-recently-used order: a hit moves its key to the end
with one C call (atomic under the GIL); only writers, which hold the cache's
lock, add and remove.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ._token_info import TokenInfo

SWEEP_INTERVAL = 1.0
"""Seconds between two sweeps of a full store for expired entries (see ``Store``)."""


class Subject:
    """One subject's place in the index: its digest and the keys of its answers."""

    __slots__ = ("digest", "keys")

    def __init__(self, digest: bytes) -> None:
        self.digest = digest
        self.keys: set[bytes] = set()


class CachedAnswer:
    """One stored answer, the times that bound it, and what guards derive from it once.

    ``fresh_until`` and ``kept_until`` are on the monotonic clock (a wall
    clock that jumps must not stretch a TTL); ``not_after`` is ``exp + leeway``
    on the wall clock (``inf`` without ``exp``), so the cache rule's re-check
    of ``exp`` on every hit is one comparison. ``memo`` holds what every
    request with this answer gets from the ASGI guard (its ``TokenUser``),
    made on the first hit instead of on every request. ``subject``: the
    entry's place in the subject index, if it has one.
    """

    __slots__ = ("fresh_until", "info", "kept_until", "memo", "not_after", "subject")

    def __init__(
        self, info: TokenInfo, fresh_until: float, kept_until: float, not_after: float
    ) -> None:
        self.info = info
        self.fresh_until = fresh_until
        self.kept_until = kept_until
        self.not_after = not_after
        self.memo: Any = None
        self.subject: Subject | None = None


Dropped = Callable[[bytes, CachedAnswer], None]
"""Told of every entry a store drops by itself (eviction, expiry)."""


class Store:
    """Entries by key in least-recently-used order, at most ``maxsize``, expired ones dropped.

    Expired entries are never served (every read checks the clock) and are
    dropped when room is needed: the least recently used entry first if it
    has expired (the usual case: one negative TTL for all), else by a sweep
    of the whole store at most once per ``SWEEP_INTERVAL`` while full, then
    the least recently used live entry goes. ``dropped`` hears of each.
    """

    __slots__ = ("dropped", "entries", "last_sweep", "maxsize", "next_expiry")

    def __init__(self, maxsize: int, dropped: Dropped) -> None:
        self.entries: OrderedDict[bytes, CachedAnswer] = OrderedDict()
        self.maxsize = maxsize
        self.dropped = dropped
        self.next_expiry = math.inf  # no entry expires before this (monotonic)
        self.last_sweep = -math.inf

    def add(self, key: bytes, entry: CachedAnswer, now: float) -> None:
        """Keep ``entry`` as the most recently used (``key`` is not in the store)."""
        entries = self.entries
        entries[key] = entry
        self.next_expiry = min(self.next_expiry, entry.kept_until)
        if len(entries) <= self.maxsize:
            return
        try:
            oldest = next(iter(entries.values()))
        except RuntimeError:  # a hit reordered the entries meanwhile: sweep instead
            oldest = entry
        if oldest.kept_until <= now:
            self.dropped(*entries.popitem(last=False))
            return
        if now >= self.next_expiry and now >= self.last_sweep + SWEEP_INTERVAL:
            self.sweep(now)
        while len(entries) > self.maxsize:
            self.dropped(*entries.popitem(last=False))

    def sweep(self, now: float) -> None:
        """Drop every expired entry; note when the next one expires."""
        self.last_sweep = now
        next_expiry = math.inf
        entries = self.entries
        for key, entry in list(entries.items()):  # a copy: hits reorder meanwhile
            if entry.kept_until <= now:
                if entries.get(key) is entry:
                    del entries[key]
                    self.dropped(key, entry)
            elif entry.kept_until < next_expiry:
                next_expiry = entry.kept_until
        self.next_expiry = next_expiry

    def live(self, now: float) -> int:
        """How many entries have not expired (sweeps first if one may have)."""
        if now >= self.next_expiry:
            self.sweep(now)
        return len(self.entries)
