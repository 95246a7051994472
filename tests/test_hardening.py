"""Hardening options: bounded work, retry and breaker rules, stale answers, claim rules, TLS.

The decision rules (``RetryPolicy``, ``CircuitBreaker``) are checked on
their own with a fake clock; everything else against real servers on
127.0.0.1: the dev authorization server, the switchable ``fault_upstream``
and a TLS server with a certificate from a throw-away CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import trustme
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    AuthorizationServerUnavailable,
    ClientAuthenticationError,
    ConfigurationError,
    GenAuthGuard,
    IntrospectionRequestRejected,
    Introspector,
    InvalidIntrospectionResponse,
    InvalidRequest,
    SyncIntrospector,
)
from genauth_guard._resilience import CircuitBreaker, RetryPolicy, SlotQueue

from .conftest import RunningAuthServer
from .fault_upstream import FaultyUpstream, faulty_upstream
from .transports import TRANSPORTS, build_introspector

SECRET = "rs-secret-" + secrets.token_hex(8)


def fresh_token() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


@pytest.fixture
def good(upstream: FaultyUpstream) -> Iterator[str]:
    """A token the upstream calls active for ten minutes; the upstream healthy again after."""
    token = fresh_token()
    upstream.app.tokens[token] = {"sub": "alice", "exp": int(time.time()) + 600}
    upstream.app.reset_counters()
    yield token
    upstream.set("ok")
    upstream.app.delay = 0.0


def make(upstream: FaultyUpstream, transport: str = "aiohttp", **options: Any) -> Introspector:
    return build_introspector(
        transport, upstream.url, client_id="rs", client_secret=SECRET, **options
    )


# ---------------------------------------------------------------- retry rule


def failure(status: int | None, retry_after: float | None = None) -> AuthorizationServerUnavailable:
    return AuthorizationServerUnavailable("x", status_code=status, retry_after=retry_after)


def test_retry_delays_are_jittered_and_doubling() -> None:
    policy = RetryPolicy(retries=3, backoff=0.2)
    for attempt, ceiling in ((1, 0.2), (2, 0.4), (3, 0.8)):
        delays = {policy.delay(attempt, failure(503), connection_failed=False) for _ in range(50)}
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered, not lockstep
    assert policy.delay(4, failure(503), connection_failed=False) is None
    assert policy.worst_case(timeout=5.0) == pytest.approx(4 * 5.0 + 0.2 * 7)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_and_connection_failures_are_retried(status: int) -> None:
    policy = RetryPolicy(retries=1, backoff=0.1)
    assert policy.delay(1, failure(status), connection_failed=False) is not None
    assert policy.delay(1, failure(None), connection_failed=True) is not None
    assert policy.delay(2, failure(status), connection_failed=False) is None


@pytest.mark.parametrize("status", [None, 400, 401, 403, 404, 429, 500, 501])
def test_other_failures_are_not_retried(status: int | None) -> None:
    # None without a connection failure: a timeout or a malformed answer.
    assert RetryPolicy(retries=5).delay(1, failure(status), connection_failed=False) is None


def test_a_retry_after_longer_than_the_backoff_is_honoured_by_not_retrying() -> None:
    policy = RetryPolicy(retries=1, backoff=0.5)
    assert policy.delay(1, failure(503, retry_after=30), connection_failed=False) is None
    delay = policy.delay(1, failure(503, retry_after=0.4), connection_failed=False)
    assert delay is not None and 0.4 <= delay <= 0.5


# ---------------------------------------------------------------- breaker rule


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_threshold_failures_in_a_row() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        breaker.record(failure(503))
    breaker.record(None)  # a success in between: the count starts again
    for _ in range(2):
        breaker.record(failure(None))
    assert breaker.state == "closed" and breaker.admit() is None
    breaker.record(InvalidIntrospectionResponse("garbage"))
    assert breaker.state == "open"
    clock.now += 4
    with pytest.raises(AuthorizationServerUnavailable) as caught:
        breaker.check()
    assert caught.value.retry_after == pytest.approx(6)
    assert "circuit breaker" in str(caught.value)


def test_per_request_refusals_do_not_open_the_breaker() -> None:
    breaker = CircuitBreaker(2, 10.0, clock=FakeClock())
    for _ in range(10):
        breaker.record(IntrospectionRequestRejected("404", status_code=404))
        breaker.record(asyncio.CancelledError())
    assert breaker.state == "closed"
    breaker.record(ClientAuthenticationError("bad secret", status_code=401))
    breaker.record(ClientAuthenticationError("bad secret", status_code=401))
    assert breaker.state == "open"  # wrong credentials fail every call alike


def test_after_the_cooldown_exactly_one_probe_goes_even_under_threads() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, 5.0, clock=clock)
    breaker.record(failure(503))
    clock.now += 5
    assert breaker.state == "half-open"
    barrier = threading.Barrier(16)

    def admit() -> float | None:
        barrier.wait()
        return breaker.admit()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: admit(), range(16)))
    assert answers.count(None) == 1  # one probe, everybody else refused at once
    breaker.record(failure(503))  # the probe failed: another full cool-down
    assert breaker.state == "open"
    assert breaker.admit() == pytest.approx(5.0)
    clock.now += 5
    assert breaker.admit() is None  # the next probe
    breaker.release()  # it gave up without an answer (no slot, cancelled)
    assert breaker.admit() is None  # so another caller may probe
    breaker.record(None)
    assert breaker.state == "closed"


def test_threshold_zero_disables_the_breaker() -> None:
    breaker = CircuitBreaker(0, 5.0)
    for _ in range(100):
        breaker.record(failure(503))
    assert breaker.state == "closed" and breaker.admit() is None


# ---------------------------------------------------------------- queue rule


def test_the_queue_admits_everybody_until_a_call_has_been_timed() -> None:
    queue = SlotQueue(slots=2, max_queued=100, queue_timeout=1.0)
    assert queue.refusal(99) is None  # a cold start: no speed known, nobody turned away
    error = queue.refusal(100)
    assert error is not None and "max_queued_introspections=100" in str(error)


def test_the_queue_refuses_newcomers_it_clearly_could_not_serve_in_time() -> None:
    queue = SlotQueue(slots=2, max_queued=1_000, queue_timeout=1.0)
    queue.observe(0.1)  # a slot frees every 0.05 s
    assert queue.expected_wait(39) == pytest.approx(2.0)
    assert queue.refusal(39) is None  # twice queue_timeout: still worth waiting for
    error = queue.refusal(40)
    assert error is not None
    assert "queue_timeout=1 s" in str(error) and "max_concurrent_introspections" in str(error)
    assert str(error) == str(queue.refusal(400))  # one text: one warning a minute, not one each


def test_the_queue_estimate_falls_fast_and_rises_slowly() -> None:
    queue = SlotQueue(slots=1, max_queued=10, queue_timeout=1.0)
    queue.observe(1.0)  # the first, slow call of a cold start
    queue.observe(0.2)
    assert queue.hold == pytest.approx(0.6)  # half way down at once
    queue.observe(1.6)
    assert queue.hold == pytest.approx(0.7)  # a tenth of the way up


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_concurrent_introspections": 0}, "max_concurrent_introspections"),
        ({"queue_timeout": -1}, "queue_timeout"),
        ({"max_queued_introspections": -1}, "max_queued_introspections"),
        ({"max_queued_introspections": 2.5}, "max_queued_introspections"),
        ({"retries": -1}, "retries"),
        ({"retries": 1.5}, "retries"),
        ({"retry_backoff": -0.1}, "retry_backoff"),
        ({"circuit_breaker_threshold": -1}, "circuit_breaker_threshold"),
        ({"circuit_breaker_cooldown": float("nan")}, "circuit_breaker_cooldown"),
        ({"audience": ""}, "audience"),
        ({"audience": []}, "audience"),
        ({"issuer": [""]}, "issuer"),
        ({"allowed_client_ids": "one-client"}, "allowed_client_ids"),
        ({"token_type": ""}, "token_type"),
    ],
)
def test_bad_hardening_options_are_configuration_errors(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Introspector("https://as.example/introspect", client_id="rs", client_secret="s", **options)


# ---------------------------------------------------------------- bounded work


@pytest.mark.anyio
async def test_calls_beyond_the_limit_wait_then_fail_fast(
    upstream: FaultyUpstream, good: str
) -> None:
    upstream.app.delay = 0.5
    introspector = make(upstream, max_concurrent_introspections=2, queue_timeout=0.1)
    started = time.monotonic()

    async def timed(token: str) -> tuple[object, float]:
        try:
            result: object = await introspector.introspect(token)
        except AuthorizationServerUnavailable as exc:
            result = exc
        return result, time.monotonic() - started

    outcomes = await asyncio.gather(*(timed(fresh_token()) for _ in range(6)))
    await introspector.aclose()
    answered = [t for r, t in outcomes if not isinstance(r, Exception)]
    refused = [(r, t) for r, t in outcomes if isinstance(r, Exception)]
    assert len(answered) == 2 and len(refused) == 4
    assert upstream.app.max_running == 2
    for error, elapsed in refused:
        assert elapsed < 0.4  # queue_timeout, not the upstream's 0.5 s
        assert "max_concurrent_introspections" in str(error)
    assert len(introspector.cache) == 2  # the two answers; the refusals are not cached


@pytest.mark.anyio
async def test_the_limit_counts_calls_not_waiting_requests(
    upstream: FaultyUpstream, good: str
) -> None:
    upstream.app.delay = 0.2
    introspector = make(upstream, max_concurrent_introspections=1, queue_timeout=0.05)
    results = await asyncio.gather(*(introspector.introspect(good) for _ in range(50)))
    await introspector.aclose()
    assert all(info.sub == "alice" for info in results)
    assert upstream.app.calls == 1


@pytest.mark.anyio
async def test_waiting_requests_get_a_slot_when_one_frees(
    upstream: FaultyUpstream, good: str
) -> None:
    upstream.app.delay = 0.1
    introspector = make(upstream, max_concurrent_introspections=2, queue_timeout=5)
    results = await asyncio.gather(*(introspector.introspect(fresh_token()) for _ in range(8)))
    await introspector.aclose()
    assert all(not info.active for info in results)
    assert upstream.app.calls == 8 and upstream.app.max_running == 2


def test_the_sync_introspector_bounds_calls_across_threads(
    upstream: FaultyUpstream, good: str
) -> None:
    upstream.app.delay = 0.3
    with SyncIntrospector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        max_concurrent_introspections=3,
        queue_timeout=0.05,
    ) as introspector:
        barrier = threading.Barrier(10)

        def call(token: str) -> object:
            barrier.wait()
            try:
                return introspector.introspect(token)
            except AuthorizationServerUnavailable as exc:
                return exc

        with ThreadPoolExecutor(10) as pool:
            results = list(pool.map(call, [fresh_token() for _ in range(10)]))
    assert sum(isinstance(r, AuthorizationServerUnavailable) for r in results) == 7
    assert upstream.app.max_running == 3


@pytest.mark.anyio
async def test_cached_tokens_need_no_slot_and_pass_an_open_breaker(
    upstream: FaultyUpstream, good: str
) -> None:
    introspector = make(upstream, circuit_breaker_threshold=1, circuit_breaker_cooldown=60)
    assert (await introspector.introspect(good)).active
    upstream.set("503")
    with pytest.raises(AuthorizationServerUnavailable):
        await introspector.introspect(fresh_token())
    assert introspector.breaker.state == "open"
    calls = upstream.calls
    assert (await introspector.introspect(good)).sub == "alice"  # the hit ignores the breaker
    with pytest.raises(AuthorizationServerUnavailable, match="circuit breaker"):
        await introspector.introspect(fresh_token())
    assert upstream.calls == calls
    await introspector.aclose()


# ---------------------------------------------------------------- bounded input and output


@pytest.mark.anyio
async def test_tokens_that_cannot_be_bearer_tokens_are_refused_before_any_call(
    upstream: FaultyUpstream, good: str
) -> None:
    introspector = make(upstream, max_token_length=64)
    for token in ("a" * 65, "has space", 'quote"d', "tab\there", "é", "a=b"):
        with pytest.raises(InvalidRequest):
            await introspector.introspect(token)
    assert (await introspector.introspect("a" * 64)).active is False
    assert upstream.app.calls == 1
    await introspector.aclose()


@pytest.mark.anyio
async def test_the_guard_answers_400_for_an_oversized_token_without_a_call(
    upstream: FaultyUpstream, good: str
) -> None:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("let in")

    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=make(upstream))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        for header in ("Bearer " + "a" * 4097, "Bearer a,b", "Bearer a b"):
            response = await client.get("/", headers={"Authorization": header})
            assert response.status_code == 400
            assert 'error="invalid_request"' in response.headers["www-authenticate"]
    assert upstream.app.calls == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.anyio
async def test_a_compressed_answer_is_decoded_within_the_limit(
    upstream: FaultyUpstream, good: str, transport: str
) -> None:
    upstream.set("gzip")
    async with make(upstream, transport) as introspector:
        assert (await introspector.introspect(good)).sub == "alice"
    with SyncIntrospector(upstream.url, client_id="rs", client_secret=SECRET) as sync:
        assert sync.introspect(good).sub == "alice"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("limit", [1024, 64 * 1024])
@pytest.mark.anyio
async def test_the_response_limit_is_configurable(
    upstream: FaultyUpstream, good: str, limit: int, transport: str
) -> None:
    upstream.app.tokens[good]["pad"] = "x" * 2000
    async with make(upstream, transport, max_response_bytes=limit) as introspector:
        if limit < 2000:
            with pytest.raises(InvalidIntrospectionResponse, match=f"larger than {limit} bytes"):
                await introspector.introspect(good)
        else:
            assert (await introspector.introspect(good)).active


# ---------------------------------------------------------------- stale answers


@pytest.mark.anyio
async def test_serve_stale_on_error_answers_from_an_unexpired_stale_entry(
    upstream: FaultyUpstream, good: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    fast = {"cache_ttl": 0.1, "timeout": 0.3, "retries": 0, "circuit_breaker_threshold": 0}
    stale = make(upstream, serve_stale_on_error=True, **fast)
    strict = make(upstream, **fast)
    for introspector in (stale, strict):
        assert (await introspector.introspect(good)).active
    await asyncio.sleep(0.15)  # past cache_ttl, far from exp
    for fault in ("503", "hang", "html", "refuse"):
        upstream.set(fault)
        assert (await stale.introspect(good)).sub == "alice", fault
        with pytest.raises((AuthorizationServerUnavailable, InvalidIntrospectionResponse)):
            await strict.introspect(good)
    assert "served a stale cached answer" in caplog.text
    upstream.set("401")  # the server refuses *us*: that needs fixing, not hiding
    with pytest.raises(ClientAuthenticationError):
        await stale.introspect(good)
    upstream.set("ok")
    calls = upstream.calls
    assert (await stale.introspect(good)).active  # fresh again: the server was asked
    assert upstream.calls == calls + 1
    del upstream.app.tokens[good]  # revoked while we served stale answers
    await asyncio.sleep(0.15)
    assert not (await stale.introspect(good)).active
    upstream.set("503")
    assert not (await stale.introspect(good)).active  # the inactive answer replaced it
    await stale.aclose()
    await strict.aclose()


@pytest.mark.anyio
async def test_a_stale_answer_never_outlives_the_tokens_exp(
    upstream: FaultyUpstream, good: str
) -> None:
    exp = math.ceil(time.time()) + 1  # 1 to 2 s ahead: room for the stale read below
    upstream.app.tokens[good]["exp"] = exp
    introspector = make(upstream, cache_ttl=0.05, serve_stale_on_error=True)
    assert (await introspector.introspect(good)).active
    upstream.set("503")
    await asyncio.sleep(0.1)
    assert (await introspector.introspect(good)).active  # stale, before exp
    await asyncio.sleep(exp - time.time() + 0.05)
    with pytest.raises(AuthorizationServerUnavailable):
        await introspector.introspect(good)
    assert len(introspector.cache) == 0
    await introspector.aclose()


def test_the_sync_introspector_serves_stale_answers_too(
    upstream: FaultyUpstream, good: str
) -> None:
    with SyncIntrospector(
        upstream.url,
        client_id="rs",
        client_secret=SECRET,
        cache_ttl=0.05,
        serve_stale_on_error=True,
    ) as introspector:
        assert introspector.introspect(good).active
        time.sleep(0.1)
        upstream.set("reset")
        assert introspector.introspect(good).sub == "alice"


# ---------------------------------------------------------------- claim rules


async def _guard_status(
    auth_server: RunningAuthServer, token: str, **rules: Any
) -> tuple[int, str]:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret", **rules
    )

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("let in")

    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        first = await client.get("/", headers={"Authorization": f"Bearer {token}"})
        calls = auth_server.calls
        again = await client.get("/", headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == first.status_code  # the cached verdict is the same verdict
    assert auth_server.calls == calls  # ... and it was cached
    await introspector.aclose()
    return first.status_code, first.headers.get("www-authenticate", "")


@pytest.mark.parametrize(
    ("mint", "rules", "status"),
    [
        ({"audience": "orders-api"}, {"audience": "orders-api"}, 200),
        ({"audience": ["billing", "orders-api"]}, {"audience": "orders-api"}, 200),
        ({"audience": ["billing"]}, {"audience": ["orders-api", "orders-v2"]}, 401),
        ({}, {"audience": "orders-api"}, 401),
        ({}, {"allowed_client_ids": ["post-client"]}, 200),
        ({"client_id": "someone-else"}, {"allowed_client_ids": ["post-client"]}, 401),
        ({}, {"token_type": "bearer"}, 200),  # the server says "Bearer": case-insensitive
        ({}, {"token_type": "DPoP"}, 401),
        ({}, {"issuer": "https://not-our-server.example"}, 401),
    ],
)
@pytest.mark.anyio
async def test_claim_rules_make_tokens_that_break_them_inactive(
    auth_server: RunningAuthServer,
    mint: dict[str, Any],
    rules: dict[str, Any],
    status: int,
) -> None:
    token = auth_server.server.mint("alice", **mint)
    got, challenge = await _guard_status(auth_server, token, **rules)
    assert got == status
    if status == 401:
        assert 'error="invalid_token"' in challenge


@pytest.mark.anyio
async def test_the_issuer_rule_accepts_the_servers_issuer(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    token = auth_server.server.mint("alice")
    assert (await _guard_status(auth_server, token, issuer=auth_server.server.issuer))[0] == 200
    caplog.set_level(logging.INFO, logger="genauth_guard")
    other = auth_server.server.mint("bob", audience="billing")
    assert (await _guard_status(auth_server, other, audience="orders-api"))[0] == 401
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and "aud" in refusals[0]
    assert other not in caplog.text


@pytest.mark.anyio
async def test_leeway_tolerates_a_server_clock_ahead_of_ours(
    auth_server: RunningAuthServer,
) -> None:
    auth_server.server.clock_offset = 30  # the server thinks it is 30 s later
    try:
        token = auth_server.server.mint("alice", not_before=auth_server.server.now())
        strict = Introspector(
            auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
        )
        lenient = Introspector(
            auth_server.endpoint(),
            client_id="post-client",
            client_secret="post-secret",
            leeway=60,
        )
        assert not (await strict.introspect(token)).active  # nbf is 30 s ahead of us
        assert (await lenient.introspect(token)).active
        await strict.aclose()
        await lenient.aclose()
    finally:
        auth_server.server.clock_offset = 0


# ---------------------------------------------------------------- transport safety


@pytest.mark.parametrize(
    "url",
    ["http://as.example/introspect", "http://10.0.0.1/introspect", "http://127.0.0.1.example/x"],
)
def test_plain_http_is_refused_except_on_loopback(url: str) -> None:
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        Introspector(url, client_id="rs", client_secret="s")
    with pytest.raises(ConfigurationError, match="allow_insecure_http"):
        SyncIntrospector(url, client_id="rs", client_secret="s")
    assert Introspector(url, client_id="rs", client_secret="s", allow_insecure_http=True)


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8/x", "http://localhost:8/x", "http://[::1]:8/x", "http://127.9.9.9/x"],
)
def test_loopback_http_is_allowed(url: str) -> None:
    assert Introspector(url, client_id="rs", client_secret="s").introspection_endpoint == url


@contextlib.contextmanager
def tls_server(ca: trustme.CA) -> Iterator[tuple[str, list[bytes]]]:
    """An HTTPS introspection endpoint on 127.0.0.1 with a certificate ``ca`` issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    seen: list[bytes] = []
    body = b'{"active": true, "sub": "alice"}'

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(
            ssl.SSLError, ConnectionError, OSError, asyncio.IncompleteReadError
        ):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.lower().split(b"\r\n")
                    if line.startswith(b"content-length:")
                )
                seen.append(await reader.readexactly(length))
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(body), body)
                )
                await writer.drain()
        writer.close()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = asyncio.run_coroutine_threadsafe(
        asyncio.start_server(handle, "127.0.0.1", 0, ssl=context), loop
    ).result()
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"https://127.0.0.1:{port}/introspect", seen
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.anyio
async def test_tls_certificates_are_verified_unless_the_user_brings_a_client(
    transport: str,
) -> None:
    ca = trustme.CA()
    with tls_server(ca) as (url, seen):
        token = fresh_token()
        ours = build_introspector(transport, url, client_id="rs", client_secret=SECRET)
        async with ours:
            with pytest.raises(AuthorizationServerUnavailable, match="could not be reached"):
                await ours.introspect(token)
        with (
            SyncIntrospector(url, client_id="rs", client_secret=SECRET) as ours_sync,
            pytest.raises(AuthorizationServerUnavailable),
        ):
            ours_sync.introspect(token)
        assert seen == []  # nothing, not even the token, went to the untrusted server
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        async with httpx.AsyncClient(verify=trusted) as client:
            theirs = Introspector(url, client_id="rs", client_secret=SECRET, http_client=client)
            assert (await theirs.introspect(token)).sub == "alice"
        assert len(seen) == 1
