"""SyncIntrospector against the real dev server: answers, cache, threads, single flight."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from genauth_guard import AuthorizationServerUnavailable, SyncIntrospector, TokenInfo
from genauth_guard._cache import TokenCache

from .conftest import CLIENTS, RunningAuthServer
from .wsgi_support import GatedAuthServer, closed_port_url, gated_auth_server

THREADS = 32


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


def make(endpoint: str, **options: Any) -> SyncIntrospector:
    options.setdefault("client_id", "post-client")
    options.setdefault("client_secret", "post-secret")
    return SyncIntrospector(endpoint, **options)


def all_at_once(count: int, call: Callable[[], Any]) -> list[Any]:
    """``call`` from ``count`` threads released together; results or raised exceptions."""
    barrier = threading.Barrier(count)

    def run() -> Any:
        barrier.wait(timeout=10)
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(run) for _ in range(count)]
        return [f.result(timeout=20) for f in futures]


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.auth_method)
def test_each_auth_method_is_accepted_by_the_server(
    auth_server: RunningAuthServer, client: Any
) -> None:
    token = auth_server.server.mint("alice", "orders:read profile")
    with SyncIntrospector(
        auth_server.endpoint(),
        client_id=client.client_id,
        client_secret=client.client_secret,
        auth_method=client.auth_method,
    ) as introspector:
        info = introspector.introspect(token)
    assert info.active
    assert (info.sub, info.scopes) == ("alice", frozenset({"orders:read", "profile"}))


def test_a_cache_hit_makes_no_second_call(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice")
    with make(auth_server.endpoint()) as introspector:
        before = auth_server.calls
        first = introspector.introspect(token)
        assert introspector.introspect(token) is first
        assert auth_server.calls - before == 1


def test_inactive_answers_are_cached_for_negative_cache_ttl(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("alice")
    auth_server.server.revoke(token)
    for negative_ttl, calls in ((10.0, 1), (0.0, 2)):
        with make(auth_server.endpoint(), negative_cache_ttl=negative_ttl) as introspector:
            before = auth_server.calls
            assert not introspector.introspect(token).active
            assert not introspector.introspect(token).active
            assert auth_server.calls - before == calls


def test_32_threads_on_one_fresh_token_make_exactly_one_call(gated: GatedAuthServer) -> None:
    token = gated.server.mint("alice", "orders:read")
    with make(gated.endpoint()) as introspector, gated.slowed(0.3):
        before = gated.calls
        answers = all_at_once(THREADS, lambda: introspector.introspect(token))
    assert gated.calls - before == 1
    assert all(isinstance(a, TokenInfo) and a.sub == "alice" for a in answers)
    assert len({id(a) for a in answers}) == 1  # the one answer, shared


def test_a_failed_flight_fails_every_waiter_and_caches_nothing(gated: GatedAuthServer) -> None:
    token = gated.server.mint("alice")
    with make(gated.endpoint()) as introspector:
        with gated.failing(503), gated.slowed(0.3):
            refused_before = gated.gate.refused
            outcomes = all_at_once(THREADS, lambda: introspector.introspect(token))
            assert gated.gate.refused - refused_before == 1
        assert all(isinstance(o, AuthorizationServerUnavailable) for o in outcomes)
        assert {o.retry_after for o in outcomes} == {7.0}
        before = gated.calls
        assert introspector.introspect(token).active  # asked again: nothing was cached
        assert gated.calls - before == 1


class _LateCache:
    """The introspector's cache, but one thread stalls right after its first miss."""

    def __init__(self, real: TokenCache, late: str, resume: threading.Event) -> None:
        self._real, self._late, self._resume = real, late, resume
        self.late_misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def get(self, key: bytes) -> TokenInfo | None:
        info = self._real.get(key)
        if threading.current_thread().name == self._late and self.late_misses == 0:
            self.late_misses += 1
            self._resume.wait(timeout=10)
        return info


def test_a_thread_that_missed_just_before_the_answer_landed_asks_no_more(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("alice")
    landed = threading.Event()
    with make(auth_server.endpoint()) as introspector:
        cache = _LateCache(introspector.cache, "late", landed)
        introspector.cache = cache  # type: ignore[assignment]
        answers: list[TokenInfo] = []
        late = threading.Thread(
            target=lambda: answers.append(introspector.introspect(token)), name="late"
        )
        before = auth_server.calls
        late.start()
        while cache.late_misses == 0:
            threading.Event().wait(0.005)
        first = introspector.introspect(token)  # the whole flight, start to end
        landed.set()
        late.join(timeout=10)
    assert answers == [first]
    assert auth_server.calls - before == 1


def test_many_threads_many_tokens_each_get_their_own_answer(
    auth_server: RunningAuthServer,
) -> None:
    server = auth_server.server
    tokens = {server.mint(f"user-{i}", f"scope-{i}"): f"user-{i}" for i in range(12)}
    revoked = server.mint("gone")
    server.revoke(revoked)
    tokens[revoked] = ""
    order = list(tokens) * 8
    with make(auth_server.endpoint()) as introspector:
        before = auth_server.calls
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(introspector.introspect, order))
    for token, info in zip(order, answers, strict=True):
        assert (info.sub or "") == tokens[token]
        assert info.active == bool(tokens[token])
    assert auth_server.calls - before == len(tokens)


def test_unreachable_server_raises_and_is_not_cached() -> None:
    with make(closed_port_url(), timeout=2) as introspector:
        for _ in range(2):
            with pytest.raises(AuthorizationServerUnavailable) as caught:
                introspector.introspect("some-token")
            assert "some-token" not in str(caught.value)
        assert len(introspector.cache) == 0


def test_close_closes_only_the_client_it_made(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice")
    with httpx.Client() as own:
        with make(auth_server.endpoint(), http_client=own) as introspector:
            assert introspector.introspect(token).active
        assert own.get(auth_server.url + "/oidc/.well-known/openid-configuration").is_success
    with make(auth_server.endpoint()) as introspector:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        introspector.introspect(auth_server.server.mint("bob"))


def test_async_and_sync_drivers_give_the_same_answer(auth_server: RunningAuthServer) -> None:
    import asyncio

    from genauth_guard import Introspector

    token = auth_server.server.mint("alice", "a b", username="al")

    async def async_answer() -> TokenInfo:
        async with Introspector(
            auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
        ) as introspector:
            return await introspector.introspect(token)

    with make(auth_server.endpoint()) as introspector:
        sync_info = introspector.introspect(token)
    async_info = asyncio.run(async_answer())
    assert sync_info == async_info
    assert dict(sync_info.claims) == dict(async_info.claims)
