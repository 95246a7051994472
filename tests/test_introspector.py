"""The async Introspector against the real dev authorization server over HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from genauth_guard import (
    ClientAuthenticationError,
    ConfigurationError,
    IntrospectionError,
    Introspector,
    TokenInfo,
)

from .conftest import RunningAuthServer

pytestmark = pytest.mark.anyio

CREDENTIALS = {
    "client_secret_post": ("post-client", "post-secret"),
    "client_secret_basic": ("basic-client", "basic:secret with spaces"),
    "none": ("public-client", None),
}


def make(
    server: RunningAuthServer, method: str = "client_secret_post", **options: object
) -> Introspector:
    client_id, secret = CREDENTIALS[method]
    return Introspector(
        server.endpoint(),
        client_id=client_id,
        client_secret=secret,
        auth_method=method,
        **options,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("method", list(CREDENTIALS))
async def test_each_auth_method_is_accepted_by_the_server(
    auth_server: RunningAuthServer, method: str
) -> None:
    token = auth_server.server.mint("alice", ["orders:read", "orders:write"])
    async with make(auth_server, method) as introspector:
        info = await introspector.introspect(token)
    assert info.active
    assert info.sub == "alice"
    assert info.scopes == frozenset({"orders:read", "orders:write"})
    assert info.token_type == "Bearer"
    assert info.exp is not None and info.exp > time.time()
    assert info.claims["jti"] == info.jti


@pytest.mark.parametrize(
    ("method", "client_id", "secret"),
    [
        ("client_secret_post", "post-client", "wrong"),
        ("client_secret_basic", "post-client", "post-secret"),  # right secret, wrong method
        ("client_secret_post", "basic-client", "basic:secret with spaces"),
        ("none", "post-client", None),  # a confidential client may not skip its secret
        ("client_secret_basic", "basic-client", "basic:secret"),
    ],
)
async def test_the_server_rejects_wrong_credentials_or_method(
    auth_server: RunningAuthServer, method: str, client_id: str, secret: str | None
) -> None:
    token = auth_server.server.mint("alice")
    introspector = Introspector(
        auth_server.endpoint(), client_id=client_id, client_secret=secret, auth_method=method
    )
    with pytest.raises(ClientAuthenticationError) as caught:
        await introspector.introspect(token)
    assert caught.value.status_code == 401
    assert "client credentials" in str(caught.value)
    assert len(introspector.cache) == 0
    await introspector.aclose()


async def test_a_cache_hit_makes_no_second_call(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    async with make(auth_server) as introspector:
        before = auth_server.calls
        first = await introspector.introspect(token)
        for _ in range(20):
            assert await introspector.introspect(token) == first
        assert auth_server.calls - before == 1


async def test_an_answer_never_outlives_the_tokens_exp(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice", expires_in=2)
    async with make(auth_server, cache_ttl=300) as introspector:
        assert (await introspector.introspect(token)).active
        await asyncio.sleep(2.1)
        before = auth_server.calls
        info = await introspector.introspect(token)
        assert not info.active
        # The cached entry was gone at exp, so the server was asked again (and said inactive).
        assert auth_server.calls - before <= 1


async def test_the_ttl_bounds_active_answers(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice")
    async with make(auth_server, cache_ttl=0.3) as introspector:
        await introspector.introspect(token)
        auth_server.server.revoke(token)
        assert (await introspector.introspect(token)).active  # still cached
        await asyncio.sleep(0.4)
        assert not (await introspector.introspect(token)).active


async def test_inactive_answers_are_cached_for_negative_cache_ttl(
    auth_server: RunningAuthServer,
) -> None:
    async with make(auth_server, negative_cache_ttl=0.4) as introspector:
        before = auth_server.calls
        for _ in range(5):
            assert not (await introspector.introspect("unknown-token")).active
        assert auth_server.calls - before == 1
        await asyncio.sleep(0.5)
        await introspector.introspect("unknown-token")
        assert auth_server.calls - before == 2


async def test_negative_cache_ttl_zero_caches_nothing(auth_server: RunningAuthServer) -> None:
    async with make(auth_server, negative_cache_ttl=0) as introspector:
        before = auth_server.calls
        for _ in range(3):
            await introspector.introspect("unknown-token")
        assert auth_server.calls - before == 3
        assert len(introspector.cache) == 0


async def test_concurrent_requests_for_one_token_share_one_call(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    async with make(auth_server) as introspector:
        before = auth_server.calls
        answers = await asyncio.gather(*(introspector.introspect(token) for _ in range(50)))
        assert auth_server.calls - before == 1
        assert all(a is answers[0] and a.active for a in answers)


async def test_a_cancelled_waiter_does_not_cancel_the_shared_call(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("alice")
    async with make(auth_server) as introspector:
        first = asyncio.ensure_future(introspector.introspect(token))
        second = asyncio.ensure_future(introspector.introspect(token))
        await asyncio.sleep(0)
        first.cancel()
        assert (await second).active


async def test_invalidate_and_clear_forget_answers(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice")
    async with make(auth_server) as introspector:
        await introspector.introspect(token)
        auth_server.server.revoke(token)
        await introspector.invalidate(token)
        assert not (await introspector.introspect(token)).active
        introspector.clear()
        assert len(introspector.cache) == 0


async def test_cache_entries_are_bound_to_endpoint_and_client(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("alice")
    a = make(auth_server)
    b = make(auth_server, "client_secret_basic")
    assert a._key(token) != b._key(token)
    assert token.encode() not in a._key(token)
    await a.aclose()
    await b.aclose()


async def test_cache_maxsize_evicts_least_recently_used(auth_server: RunningAuthServer) -> None:
    tokens = [auth_server.server.mint(f"user-{i}") for i in range(3)]
    async with make(auth_server, cache_maxsize=2) as introspector:
        for token in tokens:
            await introspector.introspect(token)
        assert len(introspector.cache) == 2
        before = auth_server.calls
        await introspector.introspect(tokens[0])  # the evicted one
        assert auth_server.calls - before == 1


async def test_the_oauth_protocol_paths_work_too(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("bob")
    async with Introspector(
        auth_server.endpoint("oauth"), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        assert (await introspector.introspect(token)).sub == "bob"


def test_constructible_at_import_time_without_an_event_loop(auth_server: RunningAuthServer) -> None:
    introspector = make(auth_server)  # no running loop here
    token = auth_server.server.mint("alice")
    # Two separate event loops, one after the other, as test runners and reloaders do.
    assert asyncio.run(introspector.introspect(token)).active
    introspector.clear()
    assert asyncio.run(introspector.introspect(token)).active


def test_unreachable_server_raises_introspection_error() -> None:
    introspector = Introspector(
        "http://127.0.0.1:9/introspect", client_id="c", client_secret="s", timeout=2
    )
    with pytest.raises(IntrospectionError, match="could not be reached"):
        asyncio.run(introspector.introspect("some-token"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"auth_method": "private_key_jwt"},
            "auth_method='private_key_jwt' needs client_private_key",
        ),
        ({"auth_method": "tls_client_auth"}, "auth_method='tls_client_auth' is not supported"),
        ({"client_secret": None}, "needs a client_secret"),
        ({"client_id": ""}, "client_id is required"),
        ({"cache_ttl": -1}, "cache_ttl=-1"),
        ({"cache_maxsize": 0}, "cache_maxsize=0"),
        ({"timeout": 0}, "timeout=0"),
    ],
)
def test_bad_options_are_configuration_errors(options: dict[str, object], message: str) -> None:
    kwargs: dict[str, object] = {"client_id": "c", "client_secret": "s", **options}
    with pytest.raises(ConfigurationError, match=message):
        Introspector("https://as.example/introspect", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    ["http://as.example/introspect", "ftp://as.example/x", "/relative", "https://u:p@as.example/x"],
)
def test_unsafe_or_invalid_endpoints_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Introspector(url, client_id="c", client_secret="s")


def test_repr_shows_no_secret() -> None:
    introspector = Introspector(
        "https://as.example/introspect", client_id="c", client_secret="top-secret-value"
    )
    assert "top-secret-value" not in repr(introspector)
    assert "top-secret-value" not in repr(introspector.auth)


def test_token_info_is_immutable_and_hashable() -> None:
    info = TokenInfo(active=True, sub="a", scopes=frozenset({"x"}))
    with pytest.raises(AttributeError):
        info.sub = "b"  # type: ignore[misc]
    assert hash(info) == hash(TokenInfo(active=True, sub="a", scopes=frozenset({"x"})))


@pytest.mark.parametrize("token", [None, "", b"bytes-token"])
def test_introspect_refuses_what_is_not_a_token_string(token: object) -> None:
    introspector = Introspector("https://as.example/introspect", client_id="c", client_secret="s")
    with pytest.raises(TypeError, match="non-empty str"):
        asyncio.run(introspector.introspect(token))  # type: ignore[arg-type]
