"""Cold start: a burst of new tokens larger than the concurrency limit, answered, not refused.

And its limit: the queue of calls waiting for a slot is bounded
(``max_queued_introspections``), so a flood beyond it is refused at once,
without a call, by both introspectors.

After a deploy, a restart or a scale-out, every active user's token is new
to the worker. 2,000 requests, each with a distinct token the cache has
never seen, arrive at once at a guarded app with the default limits
(``max_concurrent_introspections=64``): each must be let in, none refused
with 503, while the authorization server (a real uvicorn server on
127.0.0.1 that counts, on its side, how many introspections run at once)
never sees more than the limit at once.

This holds because ``queue_timeout`` (5 s by default) leaves the queue time
to drain at the transport's speed (``docs/performance.md``: about 2,000 new
tokens a second with aiohttp here, this whole burst in 1-2 s).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    AuthorizationServerUnavailable,
    GenAuthGuard,
    Introspector,
    SyncIntrospector,
    TokenInfo,
)

from .fault_upstream import FaultyUpstream, faulty_upstream

BURST = 2_000
LIMIT = 64  # the default max_concurrent_introspections


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"let in: {request.user.identity}")


@pytest.mark.anyio
async def test_a_cold_start_burst_is_answered_without_503_and_within_the_limit(
    upstream: FaultyUpstream,
) -> None:
    tokens = {secrets.token_urlsafe(32): f"user{index}" for index in range(BURST)}
    exp = int(time.time()) + 600
    for token, user in tokens.items():
        upstream.app.tokens[token] = {"sub": user, "exp": exp}
    upstream.app.delay = 0.005  # a fast server a few milliseconds away: calls overlap
    upstream.app.reset_counters()
    introspector = Introspector(upstream.direct_url, client_id="rs", client_secret="rs-secret")
    assert introspector.max_concurrent_introspections == LIMIT
    app = GenAuthGuard(Starlette(routes=[Route("/", whoami)]), introspector=introspector)
    statuses: Counter[int] = Counter()
    wrong: list[str] = []
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", timeout=60
    ) as client:

        async def user(token: str, name: str) -> None:
            response = await client.get("/", headers={"Authorization": f"Bearer {token}"})
            statuses[response.status_code] += 1
            if response.status_code == 200 and response.text != f"let in: {name}":
                wrong.append(response.text)

        started = time.monotonic()
        await asyncio.gather(*(user(token, name) for token, name in tokens.items()))
        elapsed = time.monotonic() - started
    await introspector.aclose()
    print(
        f"\ncold start: {BURST} new tokens at once in {elapsed:.2f} s with {introspector.transport}"
        f", statuses {dict(statuses)}, upstream max {upstream.app.max_running} at once"
    )
    assert statuses == {200: BURST}
    assert wrong == []
    assert upstream.app.calls == BURST
    assert LIMIT // 2 < upstream.app.max_running <= LIMIT  # the limit was reached, never passed


QUEUE_OPTIONS = {
    "client_id": "rs",
    "client_secret": "rs-secret",
    "max_concurrent_introspections": 2,
    "max_queued_introspections": 3,
}


def check_refusals(upstream: FaultyUpstream, outcomes: list[object]) -> None:
    answered = [o for o in outcomes if isinstance(o, TokenInfo)]
    refused = [o for o in outcomes if isinstance(o, AuthorizationServerUnavailable)]
    assert (len(answered), len(refused)) == (5, 15)  # 2 calls + 3 waiting; the rest refused
    assert all("max_queued_introspections" in str(error) for error in refused)
    assert upstream.app.calls == 5 and upstream.app.max_running == 2


@pytest.mark.anyio
async def test_beyond_the_queue_new_tokens_are_refused_at_once_without_a_call(
    upstream: FaultyUpstream,
) -> None:
    upstream.app.delay = 0.5
    upstream.app.reset_counters()
    introspector = Introspector(upstream.direct_url, **QUEUE_OPTIONS)  # type: ignore[arg-type]
    try:
        outcomes = await asyncio.gather(
            *(introspector.introspect(secrets.token_urlsafe(16)) for _ in range(20)),
            return_exceptions=True,
        )
    finally:
        await introspector.aclose()
    check_refusals(upstream, list(outcomes))
    assert introspector._queued == 0


def test_the_sync_introspector_bounds_its_queue_too(upstream: FaultyUpstream) -> None:
    upstream.app.delay = 0.5
    upstream.app.reset_counters()

    def introspect(introspector: SyncIntrospector) -> object:
        try:
            return introspector.introspect(secrets.token_urlsafe(16))
        except AuthorizationServerUnavailable as error:
            return error

    with (
        SyncIntrospector(upstream.direct_url, **QUEUE_OPTIONS) as introspector,  # type: ignore[arg-type]
        ThreadPoolExecutor(20) as pool,
    ):
        outcomes = list(pool.map(introspect, [introspector] * 20))
    check_refusals(upstream, outcomes)
