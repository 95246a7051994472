"""``TokenCache`` (a public part): lock-free hits, exact LRU, expired entries go first.

The cache keeps each entry's own times instead of a TLRU structure, so a
hit is a dict read with no lock. What it must still do: never serve an
entry past its times, evict the least recently used live entry when full,
drop expired entries before evicting a live one, and not count expired
entries in its size.
"""

from __future__ import annotations

import threading
import time

from genauth_guard import TokenCache, TokenInfo

LONG = TokenInfo(active=True, sub="long")  # no exp: lives cache_ttl


def short(seconds: float) -> TokenInfo:
    """An answer whose exp is ``seconds`` away (a float exp: sub-second tests)."""
    return TokenInfo(active=True, sub="short", exp=time.time() + seconds)  # type: ignore[arg-type]


def test_expired_entries_are_not_served_nor_counted() -> None:
    cache = TokenCache(maxsize=10, ttl=0.2)
    cache.put(b"a", LONG)
    cache.put(b"b", LONG)
    assert cache.get(b"a") is LONG and len(cache) == 2
    time.sleep(0.3)
    assert cache.get(b"a") is None and cache.fresh(b"b") is None
    assert len(cache) == 0


def test_a_full_cache_evicts_the_least_recently_used_live_entry() -> None:
    cache = TokenCache(maxsize=2, ttl=60.0)
    cache.put(b"a", LONG)
    cache.put(b"b", LONG)
    assert cache.get(b"a") is LONG  # a is now the most recently used
    cache.put(b"c", LONG)
    assert cache.get(b"b") is None
    assert cache.get(b"a") is LONG and cache.get(b"c") is LONG


def test_an_expired_entry_goes_before_a_live_one() -> None:
    cache = TokenCache(maxsize=2, ttl=60.0)
    cache.put(b"soon", short(0.2))
    cache.put(b"live", LONG)
    assert cache.get(b"soon") is not None  # most recently used, but about to expire
    time.sleep(0.3)
    cache.put(b"new", LONG)  # full: the expired entry makes room, not the live one
    assert cache.get(b"live") is LONG and cache.get(b"new") is LONG
    assert len(cache) == 2


def test_a_hit_does_not_wait_for_a_writer() -> None:
    cache = TokenCache()
    cache.put(b"a", LONG)
    answers: list[TokenInfo | None] = []
    with cache._lock:  # a writer holds the lock, as put() and clear() do
        reader = threading.Thread(target=lambda: answers.append(cache.get(b"a")))
        reader.start()
        reader.join(timeout=5)
        assert not reader.is_alive()
    assert answers == [LONG]


def test_an_inactive_answer_replaces_the_active_one_and_lives_apart() -> None:
    cache = TokenCache(maxsize=1, ttl=60.0, negative_ttl=60.0)
    cache.put(b"a", LONG)
    cache.put(b"a", TokenInfo(active=False))
    assert cache.get(b"a") == TokenInfo(active=False) and cache.fresh(b"a") is None
    cache.put(b"b", LONG)  # the inactive store is apart: b does not push a's "no" out
    assert cache.get(b"a") == TokenInfo(active=False) and cache.get(b"b") is LONG
