"""Faults a real server will not produce on demand, through httpx.MockTransport.

Each fault must give 503 at the guard, raise IntrospectionError at the
introspector, cache nothing, and never leak the token into a log or message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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
)

pytestmark = pytest.mark.anyio

TOKEN = "SECRET-TOKEN-d41d8cd98f00b204e9800998ecf8427e"
SECRET = "CLIENT-SECRET-4f1b2c"
Handler = Callable[[httpx.Request], httpx.Response]


def raise_(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    return handler


def answer(status: int, body: bytes | str, **headers: str) -> Handler:
    content = body.encode() if isinstance(body, str) else body
    return lambda request: httpx.Response(status, content=content, headers=headers)


FAULTS: dict[str, tuple[Handler, type[IntrospectionError]]] = {
    "timeout": (raise_(httpx.ReadTimeout("slow")), AuthorizationServerUnavailable),
    "connect error": (raise_(httpx.ConnectError("refused")), AuthorizationServerUnavailable),
    "reset": (raise_(httpx.RemoteProtocolError("reset")), AuthorizationServerUnavailable),
    "500": (answer(500, "oops"), AuthorizationServerUnavailable),
    "502 html": (answer(502, "<html>bad gateway</html>"), AuthorizationServerUnavailable),
    "html 200": (answer(200, "<html>login page</html>"), InvalidIntrospectionResponse),
    "active string": (answer(200, '{"active": "true"}'), InvalidIntrospectionResponse),
    "active number": (answer(200, '{"active": 1}'), InvalidIntrospectionResponse),
    "active missing": (answer(200, '{"sub": "x"}'), InvalidIntrospectionResponse),
    "json list": (answer(200, "[true]"), InvalidIntrospectionResponse),
    "exp string": (
        answer(200, '{"active": true, "exp": "tomorrow"}'),
        InvalidIntrospectionResponse,
    ),
    "exp NaN": (answer(200, '{"active": true, "exp": NaN}'), InvalidIntrospectionResponse),
    "scope number": (answer(200, '{"active": true, "scope": 7}'), InvalidIntrospectionResponse),
    "too large": (
        answer(200, '{"active": true, "pad": "' + "x" * 70_000 + '"}'),
        InvalidIntrospectionResponse,
    ),
    "401": (answer(401, '{"error": "invalid_client"}'), ClientAuthenticationError),
    "400 invalid_client": (answer(400, '{"error": "invalid_client"}'), ClientAuthenticationError),
    "404": (answer(404, "not found"), IntrospectionRequestRejected),
    "302": (answer(302, "", location="https://login.example/"), IntrospectionRequestRejected),
    "echoing server": (
        answer(400, '{"error": "invalid_request", "error_description": "bad token ' + TOKEN + '"}'),
        IntrospectionRequestRejected,
    ),
}


def introspector_for(handler: Handler) -> Introspector:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return Introspector(
        "https://as.example/introspect",
        client_id="rs",
        client_secret=SECRET,
        http_client=client,
        retries=0,  # these tests classify one failure; retrying is test_hardening's
    )


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_faults_raise_and_are_never_cached(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    handler, error_type = FAULTS[fault]
    calls = 0

    def counting(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return handler(request)

    introspector = introspector_for(counting)
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    for _ in range(2):
        with pytest.raises(error_type) as caught:
            await introspector.introspect(TOKEN)
        assert TOKEN not in str(caught.value) and SECRET not in str(caught.value)
    assert calls == 2  # the failure was not cached
    assert len(introspector.cache) == 0
    assert caplog.records, "a failure is logged"
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and SECRET not in record.getMessage()


@pytest.mark.parametrize("fault", ["timeout", "500", "html 200", "active string", "401"])
async def test_faults_are_503_at_the_guard(fault: str) -> None:
    handler, _ = FAULTS[fault]

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("let in")

    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector_for(handler))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        response = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "let in" not in response.text
    assert TOKEN not in response.text


async def test_a_429_passes_the_servers_retry_after_on() -> None:
    introspector = introspector_for(answer(429, "slow down", **{"retry-after": "42"}))

    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("let in")

    app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=introspector)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api"
    ) as client:
        response = await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "42"


async def test_all_waiters_share_one_failure_and_the_next_request_retries() -> None:
    calls = 0
    release = asyncio.Event()

    async def slow_failure(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await release.wait()
        return httpx.Response(503)

    client = httpx.AsyncClient(transport=httpx.MockTransport(slow_failure))
    introspector = Introspector(
        "https://as.example/introspect",
        client_id="rs",
        client_secret=SECRET,
        http_client=client,
        retries=0,
    )
    waiters = [asyncio.ensure_future(introspector.introspect(TOKEN)) for _ in range(10)]
    await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)
    assert calls == 1
    assert all(isinstance(r, AuthorizationServerUnavailable) for r in results)
    with pytest.raises(AuthorizationServerUnavailable):
        await introspector.introspect(TOKEN)
    assert calls == 2


async def test_requests_carry_the_rfc7662_form_and_client_auth() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"active": False})

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    basic = Introspector(
        "https://as.example/introspect",
        client_id="id:with colon",
        client_secret="p@ss word",
        auth_method="client_secret_basic",
        http_client=client,
    )
    await basic.introspect("tok")
    request = seen[-1]
    assert request.method == "POST"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == b"token=tok&token_type_hint=access_token"
    # RFC 6749 2.3.1: form-urlencode id and secret, then base64.
    import base64

    assert (
        request.headers["authorization"]
        == "Basic " + base64.b64encode(b"id%3Awith+colon:p%40ss+word").decode()
    )
    none = Introspector(
        "https://as.example/introspect",
        client_id="public",
        auth_method="none",
        token_type_hint=None,
        http_client=client,
    )
    await none.introspect("tok")
    assert seen[-1].content == b"token=tok&client_id=public"
    assert "authorization" not in seen[-1].headers
