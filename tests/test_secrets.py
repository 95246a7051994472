"""Tokens and the client secret never show: not in a log record, an exception or a repr.

One run drives both introspectors and the guard through everything that
logs or raises: refused credentials, every kind of upstream fault, a server
that echoes the token back, retries, the circuit breaker, the concurrency
limit, stale answers, claim-rule refusals, malformed requests. Every log
record (all loggers, DEBUG and up, httpx's included), every exception
(with its chain) and the repr of every object a user may print is then
searched for the token and the secret in every encoding they travel in.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
import traceback
from collections.abc import Iterator
from urllib.parse import quote_plus

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    GenAuthGuard,
    GenAuthGuardError,
    IntrospectionError,
    Introspector,
    SyncIntrospector,
)
from genauth_guard._client_auth import ClientSecretBasic, ClientSecretPost
from genauth_guard._credentials import ClientCredentials

from .conftest import RunningAuthServer
from .fault_upstream import FaultyUpstream, faulty_upstream

CLIENT_ID = "rs-client"
SECRET = "S3CRET-" + secrets.token_hex(12)
TOKEN = "TOKEN-" + secrets.token_urlsafe(24) + "+/="  # every b64token character class


def encodings(value: str) -> set[str]:
    """The forms ``value`` travels in: raw, form-encoded, in a Basic header."""
    basic = base64.b64encode(f"{CLIENT_ID}:{quote_plus(value)}".encode()).decode()
    return {value, quote_plus(value), basic, basic.rstrip("=")}


FORBIDDEN = encodings(SECRET) | encodings(TOKEN)


def leaks(text: str) -> list[str]:
    return [f for f in FORBIDDEN if f in text]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


def exception_texts(exc: BaseException) -> Iterator[str]:
    """``str``, ``repr``, ``args`` and the formatted traceback of ``exc`` and its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        current = current.__cause__ or current.__context__
    yield "".join(traceback.format_exception(exc))


async def whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"let in: {request.user.identity}")


async def drive_async(upstream: FaultyUpstream, raised: list[BaseException]) -> list[str]:
    """Everything the async side can do wrong, with TOKEN; returns the guard's answers."""
    upstream.app.tokens[TOKEN] = {"sub": "alice", "exp": int(time.time()) + 600, "aud": "x"}
    introspector = Introspector(
        upstream.url,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        auth_method="client_secret_basic",
        timeout=0.3,
        retry_backoff=0.01,
        circuit_breaker_threshold=3,
        circuit_breaker_cooldown=0.2,
        cache_ttl=0.05,
        serve_stale_on_error=True,
        max_concurrent_introspections=1,
        queue_timeout=0.01,
    )
    ruled = Introspector(
        upstream.url, client_id=CLIENT_ID, client_secret=SECRET, audience="orders-api"
    )
    answers: list[str] = []
    app = GenAuthGuard(Starlette(routes=[Route("/", whoami)]), introspector=introspector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:

        async def get(**headers: str) -> None:
            response = await client.get("/", headers=headers)
            answers.append(f"{response.status_code} {response.headers} {response.text}")

        await get(Authorization=f"Bearer {TOKEN}")  # accepted and cached
        await asyncio.sleep(0.06)  # stale from now on
        for fault in ("echo", "503", "reset", "hang", "html", "401", "gzip bomb", "refuse"):
            upstream.set(fault)
            await get(Authorization=f"Bearer {TOKEN}")  # stale answer, or 503
            try:
                await introspector.introspect("x" + TOKEN)
            except IntrospectionError as exc:
                raised.append(exc)
        upstream.set("ok")
        await asyncio.sleep(0.25)  # the breaker's cool-down
        await introspector.introspect(TOKEN)  # the probe succeeds: the breaker closes
        upstream.app.delay = 0.2
        results = await asyncio.gather(  # one slot: the others time out waiting
            *(introspector.introspect(str(i) + TOKEN) for i in range(3)),
            return_exceptions=True,
        )
        upstream.app.delay = 0.0
        raised += [r for r in results if isinstance(r, BaseException)]
        await get(Authorization=f"Bearer {TOKEN} {TOKEN}")
        await get(Authorization=f"Bearer {TOKEN}, Basic {TOKEN}")
        await get(Authorization=f"Bearer {TOKEN}" + "A" * 5000)
        answers.append(repr(await ruled.introspect(TOKEN)))  # refused by the audience rule
    for bad in (TOKEN + " ", TOKEN * 200):
        try:
            await ruled.introspect(bad)
        except GenAuthGuardError as exc:
            raised.append(exc)
    answers += [repr(introspector), repr(ruled), repr(introspector.auth)]
    answers += [repr(introspector.breaker), repr(introspector.retry), repr(ruled.rules)]
    await introspector.aclose()
    await ruled.aclose()
    return answers


def drive_sync(
    upstream: FaultyUpstream, auth_server: RunningAuthServer, raised: list[BaseException]
) -> list[str]:
    answers: list[str] = []
    with SyncIntrospector(
        upstream.url, client_id=CLIENT_ID, client_secret=SECRET, timeout=0.3
    ) as introspector:
        answers.append(repr(introspector.introspect(TOKEN)))
        answers.append(repr(introspector.introspect(TOKEN).claims))
        for fault in ("echo", "502", "truncate", "garbage", "huge", "exp NaN"):
            upstream.set(fault)
            try:
                introspector.introspect("y" + TOKEN)
            except IntrospectionError as exc:
                raised.append(exc)
        upstream.set("ok")
        answers.append(repr(introspector))
    for method in ("client_secret_post", "client_secret_basic"):  # the real server says no
        with SyncIntrospector(
            auth_server.endpoint(),
            client_id="post-client",
            client_secret=SECRET,
            auth_method=method,
        ) as wrong:
            try:
                wrong.introspect(TOKEN)
            except IntrospectionError as exc:
                raised.append(exc)
    answers.append(repr(ClientCredentials(CLIENT_ID, SECRET)))
    answers.append(repr(ClientSecretBasic(CLIENT_ID, SECRET)))
    answers.append(repr(ClientSecretPost(CLIENT_ID, SECRET)))
    return answers


def test_no_token_or_secret_in_logs_exceptions_or_reprs(
    upstream: FaultyUpstream, auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    raised: list[BaseException] = []
    try:
        answers = asyncio.run(drive_async(upstream, raised))
        answers += drive_sync(upstream, auth_server, raised)
    finally:
        upstream.set("ok")
        upstream.app.delay = 0.0
    # The run did exercise what it claims to.
    reasons = {getattr(exc, "reason", type(exc).__name__) for exc in raised}
    assert {
        "server_unavailable",
        "invalid_response",
        "invalid_client",
        "request_rejected",
    } <= reasons
    assert "InvalidRequest" in {type(exc).__name__ for exc in raised}
    messages = [record.getMessage() for record in caplog.records]
    assert any("circuit breaker" in m for m in messages)
    assert any("queue_timeout" in m for m in messages)
    assert any("served a stale" in m for m in messages)
    assert any("refused: its aud" in m for m in messages)
    assert any("retrying" in m for m in messages)
    assert any(a.startswith("200 ") for a in answers) and any(a.startswith("503 ") for a in answers)
    # Nothing leaked anywhere.
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        text = formatter.format(record) + repr(record.args)
        if record.name.startswith("httpcore") and "receive_response_headers" in text:
            # httpcore's DEBUG trace prints response headers as received: the
            # echoing server's own X-Token header. Nothing of ours; documented.
            continue
        assert not leaks(text), (record.name, record.getMessage())
    for exc in raised:
        for text in exception_texts(exc):
            assert not leaks(text), text
    for answer in answers:
        assert not leaks(answer), answer
