"""The guards' cached path answers exactly what the long way would.

A request whose token is cached is answered after one header scan, one
digest and one lookup, before the header is parsed in full. Every request
the full parse refuses must still be refused with its token cached (two
headers, a token in the URL too, folded credentials), odd but valid
spellings must still pass, the ``exp`` of a cached answer is re-checked on
every hit, a subclass that overrides ``introspect`` still sees every request,
and the objects shared by the requests of one token cannot carry anything
from one request to the next.
"""

from __future__ import annotations

import time
import types
from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import genauth_guard._cache
from genauth_guard import GenAuthGuard, Introspector, RedisCache, SyncIntrospector, TokenInfo
from genauth_guard._verifier import cached_path
from genauth_guard.dev.testing import serve_in_thread

from .conftest import RunningAuthServer
from .test_review_guard_requests import (
    TWO_HEADERS,
    TWO_PLACES,
    Both,
    answer,
    assert_identical_400,
    serve_both,
)

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}


@pytest.fixture(scope="module")
def both(auth_server: RunningAuthServer) -> Iterator[Both]:
    yield from serve_both(auth_server, realm="orders-api")


@pytest.fixture(scope="module")
def writers(auth_server: RunningAuthServer) -> Iterator[Both]:
    yield from serve_both(auth_server, realm="orders-api", required_scopes="orders:write")


def cached(both: Both, *args: str) -> str:
    """A token both guards have cached (one request each)."""
    token = both.auth.server.mint("alice", *args)
    for response in both.get("/me", {"Authorization": f"Bearer {token}"}).values():
        assert response.status_code == 200
    return token


@pytest.mark.parametrize(
    ("target", "headers", "description"),
    [
        ("/me", [("Authorization", "Bearer {t}"), ("Authorization", "Bearer {t}")], TWO_HEADERS),
        ("/me", [("Authorization", "Bearer {t}, Basic dXNlcjpwYXNz")], TWO_HEADERS),
        ("/me?access_token={t}", [("Authorization", "Bearer {t}")], TWO_PLACES),
        ("/me?access%5Ftoken=x", [("Authorization", "Bearer {t}")], TWO_PLACES),
    ],
)
def test_a_cached_token_does_not_excuse_a_malformed_request(
    both: Both, target: str, headers: list[tuple[str, str]], description: str
) -> None:
    token = cached(both)
    calls = both.auth.calls
    sent = [(name, value.format(t=token)) for name, value in headers]
    assert_identical_400(both.get(target.format(t=token), sent), description)
    assert both.auth.calls == calls


@pytest.mark.parametrize("spelling", ["bearer {t}", "BEARER {t}", "Bearer  {t}"])
def test_other_valid_spellings_of_a_cached_token_still_pass(both: Both, spelling: str) -> None:
    token = cached(both)
    responses = both.get("/me", {"Authorization": spelling.format(t=token)})
    for response in responses.values():
        assert (response.status_code, response.text) == (200, "let in")


def test_a_tab_after_the_scheme_is_malformed_cached_or_not(both: Both) -> None:
    token = cached(both)
    responses = both.get("/me", {"Authorization": f"Bearer\t{token}"})
    assert answer(responses["asgi"]) == answer(responses["wsgi"])
    assert responses["asgi"].status_code == 400


def test_a_cached_token_with_bytes_added_is_another_token(both: Both) -> None:
    token = cached(both)
    for extra, status in (("x", 401), ("=", 401), ("!", 400), (" x", 400)):
        responses = both.get("/me", {"Authorization": f"Bearer {token}{extra}"})
        assert answer(responses["asgi"]) == answer(responses["wsgi"])
        assert responses["asgi"].status_code == status, extra


def test_required_scopes_are_checked_on_every_cached_request(writers: Both) -> None:
    reader = writers.auth.server.mint("alice", "orders:read")
    writer = writers.auth.server.mint("bob", "orders:write")
    for _ in range(3):
        for response in writers.get("/me", {"Authorization": f"Bearer {reader}"}).values():
            assert response.status_code == 403
        for response in writers.get("/me", {"Authorization": f"Bearer {writer}"}).values():
            assert response.status_code == 200


def test_exp_is_re_checked_on_every_hit(both: Both, monkeypatch: pytest.MonkeyPatch) -> None:
    token = cached(both)
    calls = both.auth.calls
    # The wall clock jumps a day ahead (the monotonic clock, and so the TTL, does not):
    # the cached answer's exp has passed, and the cache must say so by itself.
    late = types.SimpleNamespace(time=lambda: time.time() + 86_400, monotonic=time.monotonic)
    monkeypatch.setattr(genauth_guard._cache, "time", late)
    for response in both.get("/me", {"Authorization": f"Bearer {token}"}).values():
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert both.auth.calls == calls


class Audited(Introspector):
    """A subclass that wants to see every request, cached or not."""

    seen = 0

    async def introspect(self, token: str) -> TokenInfo:
        type(self).seen += 1
        return await super().introspect(token)


async def shared_objects(request: Request) -> PlainTextResponse:
    said = []
    try:
        request.auth.scopes.append("admin")
    except TypeError as exc:
        said.append(str(exc))
    try:
        request.user.note = "from an earlier request"
    except AttributeError as exc:
        said.append(str(exc))
    return PlainTextResponse("\n".join(said))


@requires("admin")
async def admin(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin")


def test_an_overridden_introspect_sees_every_request(auth_server: RunningAuthServer) -> None:
    introspector = Audited(auth_server.endpoint(), **CREDENTIALS)  # type: ignore[arg-type]
    app = GenAuthGuard(Starlette(routes=[Route("/", shared_objects)]), introspector=introspector)
    token = auth_server.server.mint("alice")
    with serve_in_thread(app) as url:
        for _ in range(3):
            assert httpx.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert Audited.seen == 3


def test_a_request_cannot_change_what_the_next_one_with_its_token_gets(
    auth_server: RunningAuthServer,
) -> None:
    app = GenAuthGuard(
        Starlette(routes=[Route("/", shared_objects), Route("/admin", admin)]),
        introspector=Introspector(auth_server.endpoint(), **CREDENTIALS),  # type: ignore[arg-type]
    )
    token = auth_server.server.mint("alice", "orders:read")
    headers = {"Authorization": f"Bearer {token}"}
    with serve_in_thread(app) as url:
        first = httpx.get(url, headers=headers)
        second = httpx.get(url, headers=headers)
        assert httpx.get(url + "/admin", headers=headers).status_code == 403
    assert first.text == second.text
    refusals = first.text.splitlines()
    assert len(refusals) == 2
    assert all("read-only" in said and "request.state" in said for said in refusals)


@pytest.mark.parametrize("key_secret", [None, "a key secret of 32 characters.."])
def test_the_cached_path_digests_as_the_cache_keys_do(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, key_secret: str | None
) -> None:
    """With a shared cache's key secret the keys are HMACs: the guards' lookup must match."""
    token = auth_server.server.mint("alice")
    shared = RedisCache(redis_url, prefix=redis_prefix, key_secret=key_secret)
    with SyncIntrospector(
        auth_server.endpoint(),
        shared_cache=shared,
        **CREDENTIALS,  # type: ignore[arg-type]
    ) as introspector:
        find = cached_path(introspector)
        assert find is not None
        assert find(token.encode()) is None
        assert introspector.introspect(token).sub == "alice"
        entry = find(token.encode())
        assert entry is not None and entry.info.sub == "alice"
        assert find(token.encode() + b"x") is None
        assert introspector.stats().hits == 1  # the guards' lookup counts as a hit


def test_a_cached_answer_never_lets_a_bound_token_or_a_bearer_where_dpop_is_required(
    auth_server: RunningAuthServer,
) -> None:
    """Sender constraints are checked on the cached path as on the long way."""
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)  # type: ignore[arg-type]
    routes = [Route("/", shared_objects)]
    allowed = GenAuthGuard(Starlette(routes=routes), introspector=introspector)
    required = GenAuthGuard(Starlette(routes=routes), introspector=introspector, dpop="required")
    plain = auth_server.server.mint("alice")
    bound = auth_server.server.mint("bob", jkt="0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
    with serve_in_thread(allowed) as allowing, serve_in_thread(required) as requiring:
        for _ in range(3):  # the first request caches each answer, the others find it
            assert httpx.get(allowing, headers={"Authorization": f"Bearer {plain}"}).is_success
            as_bearer = httpx.get(allowing, headers={"Authorization": f"Bearer {bound}"})
            assert as_bearer.status_code == 401 and "bound to a DPoP key" in as_bearer.text
            refused = httpx.get(requiring, headers={"Authorization": f"Bearer {plain}"})
            assert refused.status_code == 401
            assert refused.headers["www-authenticate"].startswith("DPoP")
    assert introspector.stats().misses == 2  # both answers came from the cache afterwards
