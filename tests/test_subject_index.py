"""The local cache's subject index follows what the cache holds: eviction, expiry, removal."""

from __future__ import annotations

import time

from genauth_guard import TokenInfo
from genauth_guard._cache import TokenCache

ALICE, BOB = b"a" * 32, b"b" * 32


def answer(sub: str) -> TokenInfo:
    return TokenInfo(active=True, sub=sub, exp=int(time.time()) + 3600)


def key(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_evicted_answers_leave_the_index() -> None:
    cache = TokenCache(maxsize=2)
    for n in range(3):
        cache.put(key(n), answer("alice"), subject=ALICE)
    assert cache.discard_subject(ALICE) == 2  # the first was pushed out, and out of the index
    assert len(cache) == 0


def test_expired_answers_leave_the_index() -> None:
    cache = TokenCache(ttl=0.05)
    cache.put(key(1), answer("alice"), subject=ALICE)
    cache.put(key(2), answer("bob"), subject=BOB)
    time.sleep(0.1)
    cache.put(key(3), answer("alice"), subject=ALICE)  # a write expires the old entries
    assert cache.discard_subject(ALICE) == 1
    assert cache.discard_subject(BOB) == 0


def test_replaced_and_discarded_answers_leave_the_index() -> None:
    cache = TokenCache()
    cache.put(key(1), answer("alice"), subject=ALICE)
    cache.put(key(1), TokenInfo(active=False))  # now inactive: no subject
    cache.put(key(2), answer("alice"), subject=ALICE)
    cache.discard(key(2))
    cache.put(key(3), answer("alice"), subject=ALICE)
    cache.put(key(4), answer("bob"), subject=BOB)
    assert cache.discard_subject(ALICE) == 1
    assert cache.get(key(3)) is None
    assert cache.get(key(4)) is not None
    assert cache.get(key(1)) == TokenInfo(active=False)
    cache.clear()
    assert cache.discard_subject(BOB) == 0
