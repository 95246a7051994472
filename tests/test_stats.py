"""``introspector.stats()`` counts exactly what a scripted sequence of requests does.

Real HTTP throughout: the guarded apps are served (uvicorn, werkzeug) and
their introspectors talk to the dev authorization server behind a gate that
can slow it down (so a burst really waits on one call) or fail it (an
outage). Each count below follows from the script, request by request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    GenAuthGuard,
    Introspector,
    IntrospectorStats,
    RedisCache,
    SyncIntrospector,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .wsgi_support import GatedAuthServer, gated_auth_server, werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}
BURST = 16


@pytest.fixture
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("let in")


def wsgi_ok(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"let in"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def counts(stats: IntrospectorStats) -> dict[str, Any]:
    """Everything but the measured seconds, for one comparison with the script."""
    return {
        "hits": stats.hits,
        "misses": stats.misses,
        "coalesced": stats.coalesced,
        "shared_hits": stats.shared_hits,
        "calls": stats.calls,
        "retries": stats.retries,
        "failures": stats.failures,
        "failure_reasons": dict(stats.failure_reasons),
        "shed": stats.shed,
        "stale_served": stats.stale_served,
        "inactive": stats.inactive,
        "revocations": stats.revocations,
        "cache_size": stats.cache_size,
        "in_flight": stats.in_flight,
    }


NOTHING = counts(IntrospectorStats())
NOTHING_BUT_SIZE = {name: value for name, value in NOTHING.items() if name != "cache_size"}


@pytest.mark.anyio
async def test_hits_misses_and_a_burst_that_waits_on_one_call(gated: GatedAuthServer) -> None:
    server = gated.server
    alice, gone, bob = server.mint("alice"), server.mint("gone"), server.mint("bob")
    server.revoke(gone)
    introspector = Introspector(gated.endpoint(), **CREDENTIALS)  # type: ignore[arg-type]
    assert counts(introspector.stats()) == NOTHING
    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector)
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            statuses = [
                (await client.get("/", headers=bearer(alice))).status_code for _ in range(3)
            ]
            statuses += [
                (await client.get("/", headers=bearer(gone))).status_code for _ in range(2)
            ]
            # Never reaches the introspector: refused by the header's syntax alone.
            statuses.append((await client.get("/", headers=bearer("a b"))).status_code)
            with gated.slowed(0.5):  # every request of the burst arrives during the one call
                burst = await asyncio.gather(
                    *(client.get("/", headers=bearer(bob)) for _ in range(BURST))
                )
    assert statuses == [200, 200, 200, 401, 401, 400]
    assert [r.status_code for r in burst] == [200] * BURST
    stats = introspector.stats()
    assert counts(stats) == {
        **NOTHING,
        "hits": 2 + 1,  # alice twice, the revoked token once (a cached "no")
        "misses": 3,  # alice, gone, bob: one introspection each
        "coalesced": BURST - 1,  # the burst waited on bob's one call
        "calls": 3,
        "inactive": 1,  # gone
        "cache_size": 3,  # alice and bob, and the "no" for gone (negative_cache_ttl)
    }
    assert stats.lookups == 3 + 3 + BURST - 1
    assert stats.call_seconds_sum >= 0.5  # bob's call waited at the gate that long


@pytest.mark.anyio
async def test_an_outage_counts_failures_sheds_and_stale_answers(gated: GatedAuthServer) -> None:
    server = gated.server
    alice, carol, dave, erin = (server.mint(name) for name in ("alice", "carol", "dave", "erin"))
    introspector = Introspector(
        gated.endpoint(),
        cache_ttl=0.3,
        serve_stale_on_error=True,
        circuit_breaker_threshold=2,
        circuit_breaker_cooldown=60.0,
        **CREDENTIALS,  # type: ignore[arg-type]
    )
    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector)
    with serve_in_thread(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/", headers=bearer(alice))).status_code == 200
            await asyncio.sleep(0.4)  # alice's answer is past cache_ttl, before its exp: stale
            with gated.failing(503):
                outage = [
                    (await client.get("/", headers=bearer(token))).status_code
                    for token in (carol, dave, erin, alice)
                ]
    # carol and dave: a call each, 503 (503 with Retry-After: 7 is not retried at once);
    # two failures in a row open the breaker: erin is refused without a call, and alice
    # gets her old answer, as serve_stale_on_error allows while the server is failing.
    assert outage == [503, 503, 503, 200]
    assert counts(introspector.stats()) == {
        **NOTHING,
        "misses": 5,
        "calls": 3,
        "failures": 4,
        "failure_reasons": {"server_unavailable": 4},
        "shed": 2,  # erin, and alice's attempt (answered stale)
        "stale_served": 1,
        "cache_size": 1,  # alice's answer, kept stale until its exp
    }


def test_the_sync_driver_counts_the_same_under_threads(gated: GatedAuthServer) -> None:
    server = gated.server
    alice, bob = server.mint("alice"), server.mint("bob")
    with SyncIntrospector(gated.endpoint(), **CREDENTIALS) as introspector:  # type: ignore[arg-type]
        with werkzeug_server(GenAuthGuardWSGI(wsgi_ok, introspector=introspector)) as url:
            first = [httpx.get(url, headers=bearer(alice)).status_code for _ in range(4)]
            with gated.slowed(0.5), ThreadPoolExecutor(BURST) as pool:
                burst = list(
                    pool.map(
                        lambda _: httpx.get(url, headers=bearer(bob)).status_code, range(BURST)
                    )
                )
        stats = introspector.stats()
    assert first == [200] * 4 and burst == [200] * BURST
    assert counts(stats) == {
        **NOTHING,
        "hits": 3,
        "misses": 2,
        "coalesced": BURST - 1,
        "calls": 2,
        "cache_size": 2,
    }


def test_a_second_process_answers_from_the_shared_cache_and_revocations_count(
    gated: GatedAuthServer, redis_url: str, redis_prefix: str
) -> None:
    token = gated.server.mint("alice")
    endpoint = gated.endpoint()
    revocation = endpoint.replace("introspection", "revocation")

    def options() -> dict[str, Any]:
        return {**CREDENTIALS, "shared_cache": RedisCache(redis_url, prefix=redis_prefix)}

    with (
        SyncIntrospector(endpoint, **options()) as first,
        SyncIntrospector(endpoint, revocation_endpoint=revocation, **options()) as second,
    ):
        assert first.introspect(token).sub == "alice"
        assert second.introspect(token).sub == "alice"  # from the shared level: no call
        assert second.introspect(token).sub == "alice"  # now from its local cache
        second.revoke(token)
        assert not second.introspect(token).active
        assert counts(first.stats())["calls"] == 1
        seen = counts(second.stats())
        # Its own "forget" message may come back from Redis before or after the "no"
        # was cached: how many answers it holds now is not part of the script.
        del seen["cache_size"]
        assert seen == {
            **NOTHING_BUT_SIZE,
            "hits": 1,
            "misses": 2,  # the shared hit, and the question after the revocation
            "shared_hits": 1,
            "calls": 1,
            "inactive": 1,
            "revocations": 1,
        }


def test_stats_are_a_frozen_snapshot(gated: GatedAuthServer) -> None:
    with SyncIntrospector(gated.endpoint(), **CREDENTIALS) as introspector:  # type: ignore[arg-type]
        before = introspector.stats()
        introspector.introspect(gated.server.mint("alice"))
        after = introspector.stats()
    assert before.misses == 0 and after.misses == 1  # a copy, not a live view
    with pytest.raises(AttributeError):
        after.hits = 7  # type: ignore[misc]
    assert after.hit_ratio == 0.0 and IntrospectorStats(hits=3, misses=1).hit_ratio == 0.75
