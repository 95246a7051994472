"""A real multi-worker server: gunicorn, 4 uvicorn worker processes, one Redis between them."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import httpx
import pytest

from .wsgi_support import GatedAuthServer, gated_auth_server, gunicorn

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


async def load(url: str, tokens: list[str], rounds: int) -> list[httpx.Response]:
    """``rounds`` requests per token, shuffled, 20 at a time, each on a new connection."""
    requests = [token for token in tokens for _ in range(rounds)]
    random.Random(7).shuffle(requests)
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        return await asyncio.gather(
            *(client.get(url + "/", headers={"Authorization": f"Bearer {t}"}) for t in requests)
        )


async def test_four_workers_serving_200_requests_over_20_tokens_make_20_calls(
    gated: GatedAuthServer, redis_url: str, redis_prefix: str
) -> None:
    subjects = [f"user-{n}" for n in range(20)]
    tokens = [gated.server.mint(sub, ["orders:read"]) for sub in subjects]
    env = {
        "GG_ENDPOINT": gated.endpoint(),
        "GG_CLIENT_ID": "post-client",
        "GG_CLIENT_SECRET": "post-secret",
        "GG_REDIS_URL": redis_url,
        "GG_REDIS_PREFIX": redis_prefix,
    }
    with (
        gunicorn(
            "tests.shared_cache_app:app",
            env,
            workers=4,
            worker_class="uvicorn.workers.UvicornWorker",
        ) as server,
        gated.slowed(0.05),  # calls overlap, so workers do miss one token together
    ):
        before = gated.calls
        responses = await load(server.url, tokens, rounds=10)
        calls = gated.calls - before
    assert [r.status_code for r in responses] == [200] * 200
    expected = {t: s for t, s in zip(tokens, subjects, strict=True)}
    for response in responses:
        token = response.request.headers["Authorization"].removeprefix("Bearer ")
        assert response.json()["sub"] == expected[token]
    assert len({r.json()["pid"] for r in responses}) > 1  # really several processes
    assert calls == 20
