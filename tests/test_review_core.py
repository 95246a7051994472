"""Defects of 0.1 in the introspection core, each shown through the public API.

A revoked token served again from a stale entry, exceptions that escaped as
500s, a flood that evicted good tokens, one caller opening the breaker for
everybody, and a client of the wrong kind accepted at construction. The
upstream is a real server on 127.0.0.1 (``fault_upstream``), except for a
transport that raises what no real server can make it raise.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    ConfigurationError,
    GenAuthGuard,
    Introspector,
    InvalidIntrospectionResponse,
    SyncIntrospector,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .fault_upstream import FaultyUpstream, faulty_upstream
from .wsgi_support import werkzeug_server

SECRET = "rs-secret-" + secrets.token_hex(8)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"let in: {request.user.identity}")


def guarded_app(introspector: Introspector) -> GenAuthGuard:
    return GenAuthGuard(Starlette(routes=[Route("/", whoami)]), introspector=introspector)


def wsgi_whoami(environ: dict[str, object], start_response: object) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])  # type: ignore[operator]
    return [f"let in: {environ.get('REMOTE_USER')}".encode()]


# ---------------------------------------------------------------- 1. the fail-open


def test_a_token_found_inactive_is_never_served_stale_again(upstream: FaultyUpstream) -> None:
    """Active, then inactive (401), then the server fails: 503, never the old active answer."""
    token = secrets.token_urlsafe(24)
    upstream.app.tokens[token] = {"sub": "alice", "exp": int(time.time()) + 600}
    introspector = Introspector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        cache_ttl=0.2,
        negative_cache_ttl=0,
        serve_stale_on_error=True,
        timeout=0.5,
        circuit_breaker_threshold=0,
    )
    with serve_in_thread(guarded_app(introspector)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/", headers=bearer(token)).text == "let in: alice"
        del upstream.app.tokens[token]  # revoked at the server
        time.sleep(0.3)  # the fresh life is over: the server is asked again
        assert client.get("/", headers=bearer(token)).status_code == 401
        for fault in ("500", "hang", "refuse"):
            upstream.set(fault)
            response = client.get("/", headers=bearer(token))
            assert response.status_code == 503, (fault, response.text)
        upstream.set("ok")
        assert client.get("/", headers=bearer(token)).status_code == 401


def test_stale_service_still_covers_a_token_that_was_never_refused(
    upstream: FaultyUpstream,
) -> None:
    """The fix keeps the feature: an active answer stands in while the server fails."""
    token = secrets.token_urlsafe(24)
    upstream.app.tokens[token] = {"sub": "alice", "exp": int(time.time()) + 600}
    introspector = Introspector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        cache_ttl=0.2,
        serve_stale_on_error=True,
        timeout=0.5,
    )
    with serve_in_thread(guarded_app(introspector)) as url, httpx.Client(base_url=url) as client:
        assert client.get("/", headers=bearer(token)).status_code == 200
        time.sleep(0.3)
        upstream.set("500")
        assert client.get("/", headers=bearer(token)).text == "let in: alice"


# ---------------------------------------------------------------- 2. no 500 on odd answers


def test_an_exception_nobody_foresaw_fails_closed_and_is_not_cached() -> None:
    """A transport raising something outside httpx's hierarchy (no real server can)."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        raise RuntimeError("a bug deep in a transport")

    async def run() -> None:
        client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        introspector = Introspector(
            "https://as.example/introspect",
            client_id="rs",
            client_secret=SECRET,
            http_client=client,
        )
        token = secrets.token_urlsafe(24)
        with pytest.raises(InvalidIntrospectionResponse):
            await introspector.introspect(token)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=guarded_app(introspector)), base_url="http://api"
        ) as api:
            response = await api.get("/", headers=bearer(token))
        assert response.status_code == 503 and "retry-after" in response.headers
        assert len(introspector.cache) == 0 and calls == 2
        await client.aclose()

    asyncio.run(run())


@pytest.mark.parametrize("fault", ["503 odd retry-after", "exp overflow", "nbf overflow"])
def test_odd_answers_are_503_on_both_guards(upstream: FaultyUpstream, fault: str) -> None:
    token = secrets.token_urlsafe(24)
    options = {"client_id": "rs", "client_secret": SECRET, "timeout": 1.0, "retries": 0}
    upstream.set(fault)
    asgi = guarded_app(Introspector(upstream.url, **options))  # type: ignore[arg-type]
    sync = SyncIntrospector(upstream.url, **options)  # type: ignore[arg-type]
    wsgi = GenAuthGuardWSGI(wsgi_whoami, introspector=sync)
    with serve_in_thread(asgi) as asgi_url, werkzeug_server(wsgi) as wsgi_url:
        for url in (asgi_url, wsgi_url):
            response = httpx.get(url + "/", headers=bearer(token), timeout=10)
            assert response.status_code == 503, (url, response.text)
            assert response.headers["retry-after"] == "5"  # ours: "²" is no number
            assert "let in" not in response.text
    sync.close()


# ---------------------------------------------------------------- 4. floods


@pytest.mark.anyio
async def test_a_flood_of_junk_tokens_never_evicts_cached_good_tokens(
    upstream: FaultyUpstream,
) -> None:
    """Cached before the flood, served from the cache during and after it."""
    good = [secrets.token_urlsafe(24) for _ in range(20)]
    for index, token in enumerate(good):
        upstream.app.tokens[token] = {"sub": f"user{index}", "exp": int(time.time()) + 600}
    introspector = Introspector(
        upstream.direct_url,
        client_id="rs",
        client_secret=SECRET,
        cache_maxsize=100,
        negative_cache_ttl=60,
        max_concurrent_introspections=16,
        queue_timeout=5,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded_app(introspector)), base_url="http://api"
    ) as api:
        for token in good:
            assert (await api.get("/", headers=bearer(token))).status_code == 200
        upstream.app.reset_counters()
        gate = asyncio.Semaphore(50)
        during: list[int] = []

        async def junk() -> int:
            async with gate:
                response = await api.get("/", headers=bearer(secrets.token_urlsafe(24)))
                return response.status_code

        async def good_user() -> None:
            for round_ in range(10):
                token = good[round_ % len(good)]
                during.append((await api.get("/", headers=bearer(token))).status_code)
                await asyncio.sleep(0.02)

        results, _ = await asyncio.gather(
            asyncio.gather(*(junk() for _ in range(1_000))), good_user()
        )
        assert set(results) == {401}
        assert during == [200] * 10
        junk_calls = upstream.app.calls
        assert junk_calls == 1_000
        for token in good:  # every good token is still cached: no call for any of them
            assert (await api.get("/", headers=bearer(token))).status_code == 200
        assert upstream.app.calls == junk_calls
    await introspector.aclose()


# ---------------------------------------------------------------- 5. the breaker


def test_one_token_the_server_fails_for_does_not_open_the_breaker(
    upstream: FaultyUpstream,
) -> None:
    introspector = Introspector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        retries=0,
        timeout=1.0,
        circuit_breaker_threshold=3,
        circuit_breaker_cooldown=30,
    )
    poison = secrets.token_urlsafe(24)
    good = secrets.token_urlsafe(24)
    upstream.app.tokens[good] = {"sub": "alice", "exp": int(time.time()) + 600}
    with serve_in_thread(guarded_app(introspector)) as url, httpx.Client(base_url=url) as client:
        upstream.set("500")
        for _ in range(10):  # one caller, one token, many failures
            assert client.get("/", headers=bearer(poison)).status_code == 503
        upstream.set("ok")
        assert client.get("/", headers=bearer(good)).text == "let in: alice"  # not cut off
        introspector.clear()
        upstream.set("500")
        for _ in range(3):  # three distinct tokens failing: the server is failing
            assert client.get("/", headers=bearer(secrets.token_urlsafe(24))).status_code == 503
        upstream.set("ok")
        calls = upstream.calls
        response = client.get("/", headers=bearer(good))
        assert response.status_code == 503 and upstream.calls == calls  # open: no call made


@pytest.mark.parametrize("fault", ["429", "refuse"])
def test_server_wide_failures_open_the_breaker_whatever_the_token(
    upstream: FaultyUpstream, fault: str
) -> None:
    introspector = Introspector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        retries=0,
        timeout=1.0,
        circuit_breaker_threshold=3,
        circuit_breaker_cooldown=30,
    )
    token = secrets.token_urlsafe(24)
    with serve_in_thread(guarded_app(introspector)) as url, httpx.Client(base_url=url) as client:
        upstream.set(fault)
        for _ in range(3):
            assert client.get("/", headers=bearer(token)).status_code == 503
        upstream.set("ok")
        calls = upstream.calls
        assert client.get("/", headers=bearer(secrets.token_urlsafe(24))).status_code == 503
        assert upstream.calls == calls


# ---------------------------------------------------------------- 12. the wrong client


def test_a_client_of_the_other_driver_is_refused_at_construction() -> None:
    with httpx.Client() as sync_client, pytest.raises(ConfigurationError, match="AsyncClient"):
        Introspector(
            "https://as.example/introspect",
            client_id="rs",
            client_secret=SECRET,
            http_client=sync_client,  # type: ignore[arg-type]
        )

    async def refuse_async_client() -> None:
        async with httpx.AsyncClient() as async_client:
            with pytest.raises(ConfigurationError, match=r"httpx\.Client"):
                SyncIntrospector(
                    "https://as.example/introspect",
                    client_id="rs",
                    client_secret=SECRET,
                    http_client=async_client,  # type: ignore[arg-type]
                )

    asyncio.run(refuse_async_client())
