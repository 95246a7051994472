"""Profiles on TokenInfo: the userinfo endpoint read once per token, cached with the answer.

Against the dev authorization server on 127.0.0.1, whose ``/{p}/me`` answers
the user's OIDC claims as the token's scopes allow. A thin ASGI wrapper in
front of it counts ``/me`` calls and can break them the ways a real server
or a mix-up would (500, another user's profile).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector, get_token_info
from genauth_guard.dev.server import DEFAULT_USER, DevAuthServer, DevClient
from genauth_guard.testing import serve_in_thread

CLIENT = DevClient("rs", "rs-secret", "client_secret_post")
ADA = DEFAULT_USER.sub  # the dev server's default user: Ada Lovelace, ada@example.com


class MeProxy:
    """The dev server, with ``/me`` counted and, on demand, broken."""

    def __init__(self, server: DevAuthServer) -> None:
        self.server = server
        self.me_calls = 0
        self.mode = "ok"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/me"):
            self.me_calls += 1
            if self.mode == "500":
                await JSONResponse({"error": "server_error"}, 500)(scope, receive, send)
                return
            if self.mode == "other user":
                await JSONResponse({"sub": "someone-else", "email": "eve@example.com"})(
                    scope, receive, send
                )
                return
        await self.server.app(scope, receive, send)


@pytest.fixture
def proxy() -> Iterator[tuple[MeProxy, str]]:
    server = DevAuthServer([CLIENT])
    front = MeProxy(server)
    with serve_in_thread(front) as url:
        server.issuer = url
        yield front, url


async def profile(request: Request) -> JSONResponse:
    info = get_token_info(request)
    assert info is not None
    return JSONResponse({"sub": info.sub, "userinfo": info.userinfo and dict(info.userinfo)})


def guarded(introspector: Introspector) -> GenAuthGuard:
    return GenAuthGuard(Starlette(routes=[Route("/me", profile)]), introspector=introspector)


def introspector_for(url: str, **options: Any) -> Introspector:
    return Introspector.from_genauth("rs", "rs-secret", url, userinfo=True, **options)


@pytest.mark.anyio
async def test_the_profile_is_read_once_per_token_and_shared_by_a_burst(
    proxy: tuple[MeProxy, str],
) -> None:
    front, url = proxy
    token = front.server.mint(ADA, "openid profile email")
    introspector = introspector_for(url)
    assert introspector.userinfo_endpoint == f"{url}/oidc/me"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded(introspector)), base_url="http://api"
    ) as api:
        answers = await asyncio.gather(
            *(api.get("/me", headers={"Authorization": f"Bearer {token}"}) for _ in range(20))
        )
        again = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
    for response in (*answers, again):
        assert response.status_code == 200
        body = response.json()
        assert body["sub"] == ADA
        assert body["userinfo"]["email"] == "ada@example.com"
        assert body["userinfo"]["name"] == "Ada Lovelace"
        assert "phone_number" not in body["userinfo"]  # no phone scope granted
    assert front.me_calls == 1
    assert front.server.introspection_calls == 1
    await introspector.aclose()


def test_the_sync_introspector_reads_profiles_too(proxy: tuple[MeProxy, str]) -> None:
    front, url = proxy
    token = front.server.mint(ADA, "openid email")
    with SyncIntrospector.from_genauth("rs", "rs-secret", url, userinfo=True) as introspector:
        info = introspector.introspect(token)
        assert info.userinfo is not None and info.userinfo["email"] == "ada@example.com"
        assert "name" not in info.userinfo  # no profile scope
        assert introspector.introspect(token).userinfo == info.userinfo
    assert front.me_calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["500", "other user"])
async def test_a_profile_failure_is_logged_and_left_out_by_default(
    proxy: tuple[MeProxy, str], mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    front, url = proxy
    front.mode = mode
    token = front.server.mint(ADA, "openid email")
    introspector = introspector_for(url)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded(introspector)), base_url="http://api"
    ) as api:
        response = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json() == {"sub": ADA, "userinfo": None}
    assert "eve@example.com" not in response.text
    assert any("userinfo" in record.getMessage() for record in caplog.records)
    await introspector.aclose()


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["500", "other user"])
async def test_with_require_userinfo_a_profile_failure_is_503_and_not_cached(
    proxy: tuple[MeProxy, str], mode: str
) -> None:
    front, url = proxy
    front.mode = mode
    token = front.server.mint(ADA, "openid email")
    introspector = introspector_for(url, require_userinfo=True)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=guarded(introspector)), base_url="http://api"
    ) as api:
        refused = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 503 and "retry-after" in refused.headers
        front.mode = "ok"
        served = await api.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert served.status_code == 200
    assert json.loads(served.text)["userinfo"]["email"] == "ada@example.com"
    await introspector.aclose()


@pytest.mark.anyio
async def test_an_inactive_token_costs_no_profile_call(proxy: tuple[MeProxy, str]) -> None:
    front, url = proxy
    token = front.server.mint(ADA, "openid email")
    front.server.revoke(token)
    introspector = introspector_for(url)
    assert not (await introspector.introspect(token)).active
    assert front.me_calls == 0
    await introspector.aclose()


def test_discovery_names_the_userinfo_endpoint(proxy: tuple[MeProxy, str]) -> None:
    front, url = proxy
    token = front.server.mint(ADA, "openid email")
    with SyncIntrospector.from_discovery(
        f"{url}/oidc", "rs", "rs-secret", userinfo=True
    ) as introspector:
        assert introspector.userinfo_endpoint == f"{url}/oidc/me"
        info = introspector.introspect(token)
    assert info.userinfo is not None and info.userinfo["sub"] == ADA
