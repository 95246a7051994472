"""Fail closed against a real authorization server that misbehaves in every way we know.

The upstream (``fault_upstream``) is a real uvicorn server behind a real TCP
front on 127.0.0.1; the guard under test is a real uvicorn server too. For
each fault: every request is answered 503 within ``timeout`` plus a small
margin, nothing gets in, nothing is cached, and the first request after the
upstream recovers is served normally. ``Introspector``'s tests run on both
of its HTTP transports (``tests/transports.py``): aiohttp (the extra) and
httpx must give every fault the same answer, and retry the same faults.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    AuthorizationServerUnavailable,
    ClientAuthenticationError,
    GenAuthGuard,
    IntrospectionError,
    IntrospectionRequestRejected,
    Introspector,
    InvalidIntrospectionResponse,
    SyncIntrospector,
)
from genauth_guard.dev.testing import serve_in_thread

from .fault_upstream import APP_MODES, MALFORMED, TCP_MODES, FaultyUpstream, faulty_upstream
from .transports import TRANSPORTS, build_introspector

TIMEOUT = 0.5
MARGIN = 0.5
SECRET = "rs-secret-" + secrets.token_hex(8)
GOOD = "good-" + secrets.token_urlsafe(24)
FAULTS = sorted((TCP_MODES | APP_MODES) - {"ok", "gzip"})

EXPECTED: dict[str, type[IntrospectionError]] = {
    **dict.fromkeys(
        [
            *("refuse", "hang", "reset", "truncate", "garbage", "trickle headers"),
            *("500", "502", "503", "504", "429", "503 odd retry-after"),
        ],
        AuthorizationServerUnavailable,
    ),
    **dict.fromkeys(
        ["html", "huge", "endless", "gzip bomb", "slow body", *MALFORMED],
        InvalidIntrospectionResponse,
    ),
    "401": ClientAuthenticationError,
    **dict.fromkeys(["404", "302", "echo"], IntrospectionRequestRejected),
}
EXPECTED["slow body"] = AuthorizationServerUnavailable  # the deadline passes first


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def options(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "client_id": "rs",
        "client_secret": SECRET,
        "timeout": TIMEOUT,
        "retry_backoff": 0.05,
        # Above the failures one test makes in a row, so recovery is immediate;
        # the breaker's own behaviour is tested below.
        "circuit_breaker_threshold": 10,
    }
    return {**base, **overrides}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        running.app.tokens[GOOD] = {
            "sub": "alice",
            "scope": "orders:read",
            "exp": int(time.time()) + 3600,
        }
        yield running


@dataclass
class Guarded:
    client: httpx.Client
    introspector: Introspector


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"let in: {request.user.identity}")


@pytest.fixture(scope="module", params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def guarded(upstream: FaultyUpstream, transport: str) -> Iterator[Guarded]:
    introspector = build_introspector(transport, upstream.url, **options())
    app = GenAuthGuard(Starlette(routes=[Route("/", whoami)]), introspector=introspector)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield Guarded(client, introspector)


def test_every_fault_is_known() -> None:
    assert set(EXPECTED) == set(FAULTS)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.anyio
async def test_the_introspector_raises_the_expected_error_on_each_transport(
    upstream: FaultyUpstream, transport: str, fault: str
) -> None:
    """The exception class, not only the 503: aiohttp's failures are judged as httpx's."""
    introspector = build_introspector(transport, upstream.url, **options())
    upstream.set(fault)
    try:
        with pytest.raises(IntrospectionError) as caught:
            await introspector.introspect(GOOD)
    finally:
        upstream.set("ok")
    try:
        assert type(caught.value) is EXPECTED[fault], str(caught.value)
        assert GOOD not in str(caught.value) and SECRET not in str(caught.value)
        assert len(introspector.cache) == 0
        assert (await introspector.introspect(GOOD)).sub == "alice"
    finally:
        await introspector.aclose()


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_is_503_in_time_uncached_and_service_resumes_at_once(
    guarded: Guarded, upstream: FaultyUpstream, fault: str
) -> None:
    upstream.set(fault)
    try:
        for token in (GOOD, secrets.token_urlsafe(24)):
            started = time.monotonic()
            response = guarded.client.get("/", headers=bearer(token))
            elapsed = time.monotonic() - started
            assert response.status_code == 503, response.text
            assert "let in" not in response.text
            assert token not in response.text and token not in str(response.headers)
            assert response.headers["retry-after"].isdigit()
            assert "www-authenticate" not in response.headers
            assert elapsed < TIMEOUT + MARGIN, f"{fault}: {elapsed:.2f} s"
        assert len(guarded.introspector.cache) == 0
    finally:
        upstream.set("ok")
    response = guarded.client.get("/", headers=bearer(GOOD))
    assert (response.status_code, response.text) == (200, "let in: alice")
    guarded.introspector.clear()


@pytest.fixture(scope="module")
def sync_introspector(upstream: FaultyUpstream) -> Iterator[SyncIntrospector]:
    with SyncIntrospector(upstream.url, **options()) as introspector:  # type: ignore[arg-type]
        yield introspector


@pytest.mark.parametrize("fault", FAULTS)
def test_the_sync_introspector_fails_the_same_way(
    sync_introspector: SyncIntrospector, upstream: FaultyUpstream, fault: str
) -> None:
    upstream.set(fault)
    try:
        started = time.monotonic()
        with pytest.raises(IntrospectionError) as caught:
            sync_introspector.introspect(GOOD)
        elapsed = time.monotonic() - started
        assert type(caught.value) is EXPECTED[fault], str(caught.value)
        assert elapsed < TIMEOUT + MARGIN, f"{fault}: {elapsed:.2f} s"
        assert GOOD not in str(caught.value) and SECRET not in str(caught.value)
        assert len(sync_introspector.cache) == 0
    finally:
        upstream.set("ok")
    assert sync_introspector.introspect(GOOD).sub == "alice"
    sync_introspector.clear()


@pytest.mark.parametrize(
    ("fault", "attempts"),
    [
        ("502", 2),
        ("503", 2),
        ("504", 2),
        ("reset", 2),
        ("truncate", 2),
        ("500", 1),  # a server bug: asking again will not help
        ("429", 1),  # asked us to wait 30 s: we do not retry early
        ("401", 1),
        ("404", 1),
        ("html", 1),
        ("hang", 1),  # a timeout is not retried: the server had its full timeout
    ],
)
@pytest.mark.anyio
async def test_retries_only_connection_failures_and_gateway_errors(
    upstream: FaultyUpstream, transport: str, fault: str, attempts: int
) -> None:
    introspector = build_introspector(transport, upstream.url, **options(timeout=0.3))
    upstream.set(fault)
    before = upstream.calls
    try:
        with pytest.raises(IntrospectionError):
            await introspector.introspect(secrets.token_urlsafe(16))
    finally:
        upstream.set("ok")
        await introspector.aclose()
    assert upstream.calls - before == attempts


@pytest.mark.anyio
async def test_retries_zero_means_one_attempt(upstream: FaultyUpstream, transport: str) -> None:
    introspector = build_introspector(transport, upstream.url, **options(retries=0))
    upstream.set("503")
    before = upstream.calls
    try:
        with pytest.raises(AuthorizationServerUnavailable):
            await introspector.introspect(secrets.token_urlsafe(16))
    finally:
        upstream.set("ok")
        await introspector.aclose()
    assert upstream.calls - before == 1


@pytest.mark.anyio
async def test_a_retry_that_succeeds_gives_the_answer(
    upstream: FaultyUpstream, transport: str
) -> None:
    """The first attempt meets a reset, the retry a healthy server: the caller sees no fault."""
    introspector = build_introspector(transport, upstream.url, **options(retry_backoff=0.3))
    upstream.set("reset")

    import asyncio

    async def recover() -> None:
        await asyncio.sleep(0.1)  # after the first attempt, before the retry (0.15-0.3 s)
        upstream.set("ok")

    try:
        recovering = asyncio.ensure_future(recover())
        info = await introspector.introspect(GOOD)
        await recovering
    finally:
        upstream.set("ok")
        await introspector.aclose()
    assert info.active and info.sub == "alice"


def test_the_breaker_answers_at_once_while_open_and_probes_after_the_cooldown(
    upstream: FaultyUpstream, transport: str
) -> None:
    introspector = build_introspector(
        transport,
        upstream.url,
        **options(timeout=0.5, circuit_breaker_threshold=3, circuit_breaker_cooldown=0.6),
    )
    app = GenAuthGuard(Starlette(routes=[Route("/", whoami)]), introspector=introspector)
    upstream.set("hang")
    try:
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(3):  # three timeouts in a row open the breaker
                assert client.get("/", headers=bearer(secrets.token_urlsafe(16))).status_code == 503
            assert introspector.breaker.state == "open"
            before = upstream.calls
            started = time.monotonic()
            response = client.get("/", headers=bearer(GOOD))
            assert response.status_code == 503
            assert time.monotonic() - started < 0.3  # no waiting for the 0.5 s timeout
            assert upstream.calls == before  # not even a connection attempt
            assert response.headers["retry-after"] == "1"  # the cool-down left, rounded up
            upstream.set("ok")
            assert client.get("/", headers=bearer(GOOD)).status_code == 503  # still cooling down
            time.sleep(0.7)
            response = client.get("/", headers=bearer(GOOD))  # the probe
            assert (response.status_code, response.text) == (200, "let in: alice")
            assert introspector.breaker.state == "closed"
            assert client.get("/", headers=bearer(secrets.token_urlsafe(16))).status_code == 401
    finally:
        upstream.set("ok")
