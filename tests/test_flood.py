"""A flood of random tokens against a slow authorization server.

5,000 requests, each with a token never seen before, hit a GenAuthGuard app
(in-process, through ``httpx.ASGITransport``, for speed) whose introspector
talks real HTTP to a slow upstream on 127.0.0.1. The upstream counts, on its
side, how many introspections run at once. Meanwhile a legitimate client
keeps using its cached token. Nothing may get in, the upstream must never see
more than ``max_concurrent_introspections`` calls at once, memory must stay
bounded, and the cached client must keep being answered promptly.

Memory is checked by what could grow with the flood, sampled throughout:
cached answers (capped by ``cache_maxsize``), flights (one per waiting or
running distinct token, so bounded by the requests in flight), and the
process's peak RSS. ``tracemalloc`` would triple the run time for the same
conclusion (measured once: 16.6 MB traced peak for this flood).
"""

from __future__ import annotations

import asyncio
import resource
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector

from .fault_upstream import FaultyUpstream, faulty_upstream

FLOOD = 5_000
AT_ONCE = 200  # requests in flight at any moment (a server's connection limit)
LIMIT = 16
CACHE_SIZE = 1_000


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"let in: {request.user.identity}")


@pytest.mark.anyio
async def test_a_flood_of_random_tokens_is_bounded_and_good_tokens_keep_working(
    upstream: FaultyUpstream,
) -> None:
    good = secrets.token_urlsafe(32)
    upstream.app.tokens[good] = {"sub": "alice", "exp": int(time.time()) + 600}
    upstream.app.delay = 0.05  # plus uvicorn's own latency: a slow server
    introspector = Introspector(
        upstream.direct_url,
        client_id="rs",
        client_secret="rs-secret",
        max_concurrent_introspections=LIMIT,
        queue_timeout=0.2,
        cache_maxsize=CACHE_SIZE,
        timeout=2.0,
    )
    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector)
    statuses: Counter[int] = Counter()
    good_latencies: list[float] = []
    inflight_sizes: list[int] = []
    cache_sizes: list[int] = []
    done = asyncio.Event()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=30
    ) as client:
        warm = await client.get("/", headers={"Authorization": f"Bearer {good}"})
        assert warm.text == "let in: alice"
        upstream.app.reset_counters()

        gate = asyncio.Semaphore(AT_ONCE)

        async def attacker() -> None:
            async with gate:
                token = secrets.token_urlsafe(32)
                response = await client.get("/", headers={"Authorization": f"Bearer {token}"})
                statuses[response.status_code] += 1

        async def legitimate_user() -> None:
            while not done.is_set():
                started = time.perf_counter()
                response = await client.get("/", headers={"Authorization": f"Bearer {good}"})
                good_latencies.append(time.perf_counter() - started)
                assert response.text == "let in: alice"
                inflight_sizes.append(len(introspector._inflight))
                cache_sizes.append(len(introspector.cache))
                await asyncio.sleep(0.01)

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
        started = time.monotonic()
        user = asyncio.ensure_future(legitimate_user())
        await asyncio.gather(*(attacker() for _ in range(FLOOD)))
        elapsed = time.monotonic() - started
        done.set()
        await user
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024

    await introspector.aclose()
    print(
        f"\nflood: {FLOOD} requests in {elapsed:.1f} s, statuses {dict(statuses)}, "
        f"upstream calls {upstream.app.calls} (max {upstream.app.max_running} at once), "
        f"peak RSS growth {rss_growth / 1e6:.1f} MB, at most {max(inflight_sizes)} flights "
        f"and {max(cache_sizes)} cached answers, "
        f"good token: {len(good_latencies)} requests, median "
        f"{statistics.median(good_latencies) * 1000:.1f} ms, "
        f"max {max(good_latencies) * 1000:.1f} ms"
    )
    # Nothing got in, nothing crashed: unknown tokens are 401, the overflow 503.
    assert set(statuses) <= {401, 503} and sum(statuses.values()) == FLOOD
    assert statuses[503] > 0 and statuses[401] > 0
    # The authorization server never saw more than the limit at once.
    assert upstream.app.max_running <= LIMIT
    # Every 401 is the server's answer; the 503s were mostly refused without a call.
    assert statuses[401] <= upstream.app.calls < FLOOD // 4
    # Memory: the cache is capped, no flight outlives the flood, the peak is bounded.
    # Active and inactive answers have a store of CACHE_SIZE each: the flood
    # fills the inactive one and never pushes the good token's answer out.
    assert max(cache_sizes) <= 2 * CACHE_SIZE and len(introspector.cache) <= 2 * CACHE_SIZE
    upstream.app.reset_counters()
    assert (await introspector.introspect(good)).sub == "alice"
    assert upstream.app.calls == 0
    assert max(inflight_sizes) <= AT_ONCE
    assert introspector._inflight == {}
    assert rss_growth < 100e6
    # The legitimate, cached client was served all along, and promptly.
    assert len(good_latencies) >= 20
    assert statistics.median(good_latencies) < 0.05
    assert max(good_latencies) < 0.5
