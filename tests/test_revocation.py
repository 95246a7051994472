"""RFC 7009 revocation against the dev server: confirmed revocations evict, errors raise."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genauth_guard import (
    ConfigurationError,
    Introspector,
    RevocationError,
    SyncIntrospector,
)
from genauth_guard.dev.server import DevAuthServer
from genauth_guard.dev.testing import serve_in_thread

from .conftest import CLIENTS, RunningAuthServer

CREDENTIALS = {client.auth_method: client for client in CLIENTS}


def genauth(
    server: RunningAuthServer, method: str = "client_secret_post", protocol: str = "oidc"
) -> tuple[str, str | None, str, str, str]:
    client = CREDENTIALS[method]
    return client.client_id, client.client_secret, server.url, protocol, method


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["oidc", "oauth"])
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
async def test_revoke_then_introspect_is_inactive_and_the_cache_forgot(
    auth_server: RunningAuthServer, method: str, protocol: str
) -> None:
    client = CREDENTIALS[method]
    token = auth_server.server.mint("alice", "orders:read", client_id=client.client_id)
    async with Introspector.from_genauth(*genauth(auth_server, method, protocol)) as introspector:
        assert (await introspector.introspect(token)).active
        calls = auth_server.calls
        assert (await introspector.introspect(token)).active  # the cache holds the answer
        assert auth_server.calls == calls

        await introspector.revoke(token)

        assert not (await introspector.introspect(token)).active
        assert auth_server.calls == calls + 1  # asked again, not answered from the cache


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
def test_sync_revoke_then_introspect_is_inactive(
    auth_server: RunningAuthServer, method: str
) -> None:
    client = CREDENTIALS[method]
    token = auth_server.server.mint("bob", client_id=client.client_id)
    with SyncIntrospector.from_genauth(*genauth(auth_server, method)) as introspector:
        assert introspector.introspect(token).active
        introspector.revoke(token)
        assert not introspector.introspect(token).active


@pytest.mark.anyio
async def test_a_rejected_revocation_raises_and_keeps_the_token(
    auth_server: RunningAuthServer,
) -> None:
    """Unlike GenAuth's SDK, an error answer is not reported as success."""
    token = auth_server.server.mint("carol")
    async with Introspector.from_genauth(
        "post-client", "wrong-secret", auth_server.url
    ) as introspector:
        with pytest.raises(RevocationError) as caught:
            await introspector.revoke(token)
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert "rejected the client credentials at the revocation endpoint" in message
    assert "revocation_endpoint_auth_method" in message
    assert "wrong-secret" not in message and token not in message
    assert auth_server.server.answer(token)["active"] is True


def test_revocation_has_its_own_auth_method(auth_server: RunningAuthServer) -> None:
    """Introspection works while revocation, with another method, is refused (and says so)."""
    token = auth_server.server.mint("dave")
    with SyncIntrospector.from_genauth(
        "post-client",
        "post-secret",
        auth_server.url,
        revocation_endpoint_auth_method="client_secret_basic",
    ) as introspector:
        assert introspector.auth_method == "client_secret_post"
        assert introspector.introspect(token).active
        with pytest.raises(RevocationError, match="revocation_endpoint_auth_method"):
            introspector.revoke(token)
        assert introspector.introspect(token).active


def test_an_error_code_answer_raises(auth_server: RunningAuthServer) -> None:
    """A 400 (here: the token belongs to another client) is an error, not a success."""
    token = auth_server.server.mint("erin", client_id="post-client")
    other = SyncIntrospector.from_genauth(*genauth(auth_server, "client_secret_basic"))
    with other, pytest.raises(RevocationError) as caught:
        other.revoke(token)
    assert caught.value.status_code == 400
    assert "HTTP 400 unauthorized_client" in str(caught.value)
    assert auth_server.server.answer(token)["active"] is True
    with SyncIntrospector.from_genauth(*genauth(auth_server)) as owner:
        owner.revoke(token, token_type_hint=None)  # RFC 7009: the hint is optional
        assert not owner.introspect(token).active


@pytest.mark.anyio
async def test_an_unreachable_revocation_endpoint_raises() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed
    introspector = Introspector(
        f"http://127.0.0.1:{port}/oidc/token/introspection",
        client_id="rs",
        client_secret="secret",
        revocation_endpoint=f"http://127.0.0.1:{port}/oidc/token/revocation",
    )
    with pytest.raises(RevocationError, match="could not be reached"):
        await introspector.revoke("some-token")
    await introspector.aclose()


@pytest.mark.anyio
async def test_without_a_revocation_endpoint_revoke_says_how_to_get_one(
    auth_server: RunningAuthServer,
) -> None:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    with pytest.raises(ConfigurationError, match="revoke\\(\\) needs a revocation endpoint"):
        await introspector.revoke("token")
    with pytest.raises(TypeError, match="non-empty str"):
        await introspector.revoke("")
    await introspector.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"revocation_endpoint": "http://as.example/revoke"}, "revocation_endpoint="),
        ({"revocation_auth_method": "jwt"}, "revocation_auth_method='jwt' is not supported"),
        (
            {"auth_method": "none", "client_secret": None,
             "revocation_endpoint": "https://as.example/revoke",
             "revocation_auth_method": "client_secret_post"},
            "revocation_auth_method='client_secret_post' needs a client_secret",
        ),
    ],
)  # fmt: skip
def test_revocation_options_are_checked_at_construction(
    options: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"client_id": "rs", "client_secret": "secret", **options}
    with pytest.raises(ConfigurationError, match=message):
        SyncIntrospector("https://as.example/introspect", **arguments)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the in-flight race


@dataclass
class SlowIntrospection:
    """Delays introspection answers once decided: one is on its way while the token is revoked."""

    app: ASGIApp
    delay: float

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/token/introspection"):
            await self.app(scope, receive, send)
            return

        async def send_late(message: Message) -> None:
            if message["type"] == "http.response.start":
                await asyncio.sleep(self.delay)
            await send(message)

        await self.app(scope, receive, send_late)


@pytest.fixture(scope="module")
def slow_server() -> Iterator[tuple[DevAuthServer, str]]:
    server = DevAuthServer(CLIENTS)
    with serve_in_thread(SlowIntrospection(server.app, delay=0.3)) as url:
        server.issuer = url
        yield server, url


@pytest.mark.anyio
async def test_an_answer_in_flight_during_revocation_is_not_left_in_the_cache(
    slow_server: tuple[DevAuthServer, str],
) -> None:
    """The introspection started before the revocation must not re-cache 'active' after it."""
    server, url = slow_server
    token = server.mint("frank")
    async with Introspector.from_genauth("post-client", "post-secret", url) as introspector:
        in_flight = asyncio.ensure_future(introspector.introspect(token))
        await asyncio.sleep(0.05)  # the request has reached the server: it will say active
        await introspector.revoke(token)
        assert (await in_flight).active  # answered before the revocation took effect
        assert not (await introspector.introspect(token)).active


def test_sync_an_answer_in_flight_during_revocation_is_not_left_in_the_cache(
    slow_server: tuple[DevAuthServer, str],
) -> None:
    server, url = slow_server
    token = server.mint("gina")
    with SyncIntrospector.from_genauth("post-client", "post-secret", url) as introspector:
        results: list[bool] = []
        reader = threading.Thread(
            target=lambda: results.append(introspector.introspect(token).active)
        )
        reader.start()
        time.sleep(0.1)  # the reader's request has reached the server: it will say active
        introspector.revoke(token)
        reader.join()
        assert results == [True]
        assert not introspector.introspect(token).active
