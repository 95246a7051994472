"""Cold start: a burst of new tokens larger than the concurrency limit, answered, not refused.

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

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector

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
