"""GenAuthGuardWSGI against the real dev server: the ASGI guard's behaviour, on WSGI.

Driven through ``httpx.WSGITransport`` and through werkzeug's real WSGI
server on 127.0.0.1; every refusal is compared, byte for byte, with what the
ASGI ``GenAuthGuard`` answers to the same request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    SyncIntrospector,
    TokenInfo,
    get_token_info,
    require_scopes,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI, authorization_values

from .conftest import RunningAuthServer
from .wsgi_support import closed_port_url, gated_auth_server, werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

REALM = "orders-api"
# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'
INVALID_TOKEN = (
    f'Bearer realm="{REALM}", error="invalid_token", error_description='
    '"The access token is not active (expired, revoked or unknown); get a new one."' + DPOP_OFFER
)


def echo_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """What a WSGI app behind the guard sees."""
    info = environ.get("genauth_guard.token_info")
    body = {
        "path": environ["PATH_INFO"],
        "remote_user": environ.get("REMOTE_USER"),
        "auth_type": environ.get("AUTH_TYPE"),
        "token_info": isinstance(info, TokenInfo),
        "sub": getattr(info, "sub", None),
        "scopes": sorted(getattr(info, "scopes", ())),
        "same_as_helper": get_token_info(environ) is info,
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


@require_scopes("orders:write")
def write_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    """A bare WSGI app with its own scope requirement (its 403 names the guard's realm)."""
    start_response("201 Created", [("Content-Type", "text/plain")])
    return [b"written"]


def routed(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/orders/write":
        return write_app(environ, start_response)
    return echo_app(environ, start_response)


async def asgi_echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


@dataclass
class Guards:
    """The same options on both guards: a WSGI client and the ASGI guard's URL."""

    auth: RunningAuthServer
    introspector: SyncIntrospector
    wsgi: httpx.Client
    asgi_url: str

    def mint(self, *args: Any, **kwargs: Any) -> str:
        return self.auth.server.mint(*args, **kwargs)


GUARD_OPTIONS: dict[str, Any] = {"exclude_paths": ["/health", "/public/*"], "realm": REALM}


@pytest.fixture(scope="module")
def guards(auth_server: RunningAuthServer) -> Iterator[Guards]:
    introspector = SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    wsgi = GenAuthGuardWSGI(routed, introspector=introspector, **GUARD_OPTIONS)
    asgi = GenAuthGuard(
        Starlette(routes=[Route("/{path:path}", asgi_echo)]),
        introspector=Introspector(
            auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
        ),
        **GUARD_OPTIONS,
    )
    with (
        introspector,
        httpx.Client(transport=httpx.WSGITransport(app=wsgi), base_url="http://wsgi") as client,
        serve_in_thread(asgi) as asgi_url,
    ):
        yield Guards(auth_server, introspector, client, asgi_url)


def answer(response: httpx.Response) -> tuple[int, dict[str, str | None], bytes]:
    """What a client can see of a refusal."""
    names = ("content-type", "cache-control", "www-authenticate", "retry-after")
    return response.status_code, {n: response.headers.get(n) for n in names}, response.content


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- the error table


REFUSALS: dict[str, tuple[int, str, dict[str, str]]] = {
    # case: (status, error in the body, request headers)
    "no token": (401, "unauthorized", {}),
    "another scheme": (401, "unauthorized", {"Authorization": "Basic dXNlcjpwYXNz"}),
    "scheme only": (400, "invalid_request", {"Authorization": "Bearer"}),
    "two words": (400, "invalid_request", {"Authorization": "Bearer two words"}),
    "comma in token": (400, "invalid_request", {"Authorization": "Bearer a,b"}),
    "too long": (400, "invalid_request", {"Authorization": "Bearer " + "x" * 5000}),
    "not a credential": (400, "invalid_request", {"Authorization": "@@@ nonsense"}),
    "unknown token": (401, "invalid_token", {"Authorization": "Bearer never-issued"}),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_each_refusal_is_the_asgi_guards_byte_for_byte(guards: Guards, case: str) -> None:
    status, error, headers = REFUSALS[case]
    before = guards.auth.calls
    wsgi = guards.wsgi.get("/me", headers=headers)
    asgi = httpx.get(guards.asgi_url + "/me", headers=headers)
    assert answer(wsgi) == answer(asgi)
    assert wsgi.status_code == status
    challenge = wsgi.headers["www-authenticate"]
    if error == "unauthorized":
        assert challenge == f'Bearer realm="{REALM}"' + DPOP_OFFER
    elif error == "invalid_token":
        assert challenge == INVALID_TOKEN
    else:
        assert challenge.startswith(
            f'Bearer realm="{REALM}", error="invalid_request", error_description="'
        )
        assert guards.auth.calls == before  # refused before any introspection
    assert wsgi.headers["content-type"] == "application/json"
    assert wsgi.headers["cache-control"] == "no-store"
    body = wsgi.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error


def test_no_token_body_says_what_to_send(guards: Guards) -> None:
    response = guards.wsgi.get("/me")
    assert response.json() == {
        "error": "unauthorized",
        "error_description": (
            "This resource needs an access token: send 'Authorization: Bearer <token>'."
        ),
    }
    assert response.headers["content-length"] == str(len(response.content))


@pytest.mark.parametrize("kind", ["revoked", "expired"])
def test_inactive_tokens_are_401_invalid_token(guards: Guards, kind: str) -> None:
    if kind == "revoked":
        token = guards.mint("alice")
        guards.auth.server.revoke(token)
    else:
        token = guards.mint("alice", expires_in=-10)
    wsgi = guards.wsgi.get("/me", headers=bearer(token))
    assert wsgi.status_code == 401
    assert wsgi.headers["www-authenticate"] == INVALID_TOKEN
    assert answer(wsgi) == answer(httpx.get(guards.asgi_url + "/me", headers=bearer(token)))


def test_token_in_header_and_query_is_400_like_asgi(guards: Guards) -> None:
    token = guards.mint("alice")
    wsgi = guards.wsgi.get("/me", headers=bearer(token), params={"access_token": token})
    asgi = httpx.get(guards.asgi_url + "/me", headers=bearer(token), params={"access_token": token})
    assert wsgi.status_code == 400
    assert "more than one place" in wsgi.json()["error_description"]
    assert answer(wsgi) == answer(asgi)


def test_token_in_the_query_is_refused_unless_allowed(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("alice")
    with SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        for allow, status in ((False, 400), (True, 200)):
            app = GenAuthGuardWSGI(echo_app, introspector=introspector, allow_query_token=allow)
            with httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
                response = client.get("http://wsgi/me", params={"access_token": token})
            assert response.status_code == status


def test_missing_required_scope_is_403_with_the_exact_challenge(
    auth_server: RunningAuthServer,
) -> None:
    with SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        app = GenAuthGuardWSGI(
            echo_app, introspector=introspector, required_scopes="orders:read orders:write"
        )
        with httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
            refused = client.get("http://wsgi/", headers=bearer(auth_server.server.mint("al")))
            allowed = client.get(
                "http://wsgi/",
                headers=bearer(auth_server.server.mint("al", "orders:read orders:write")),
            )
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        'Bearer realm="api", error="insufficient_scope", error_description='
        '"The access token lacks the scope this resource needs: orders:read orders:write.", '
        'scope="orders:read orders:write"' + DPOP_OFFER
    )
    assert refused.json()["error"] == "insufficient_scope"
    assert allowed.status_code == 200


def test_require_scopes_on_a_bare_wsgi_app(guards: Guards) -> None:
    reader = guards.mint("alice", "orders:read")
    writer = guards.mint("bob", "orders:write")
    refused = guards.wsgi.get("/orders/write", headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"] == (
        f'Bearer realm="{REALM}", error="insufficient_scope", error_description='
        '"The access token lacks the scope this resource needs: orders:write.", '
        'scope="orders:write"' + DPOP_OFFER
    )
    assert refused.headers["content-length"] == str(len(refused.content))
    written = guards.wsgi.get("/orders/write", headers=bearer(writer))
    assert (written.status_code, written.text) == (201, "written")


# ---------------------------------------------------------------- what the app sees


def test_accepted_request_carries_remote_user_and_token_info(guards: Guards) -> None:
    token = guards.mint("alice", "orders:read profile")
    response = guards.wsgi.get("/me", headers=bearer(token))
    assert response.status_code == 200
    assert response.json() == {
        "path": "/me",
        "remote_user": "alice",
        "auth_type": "Bearer",
        "token_info": True,
        "sub": "alice",
        "scopes": ["orders:read", "profile"],
        "same_as_helper": True,
    }


def test_remote_user_falls_back_to_username_never_to_client_id(guards: Guards) -> None:
    by_username = guards.mint(None, username="carol")
    by_client = guards.mint(None, client_id="machine-client")
    assert guards.wsgi.get("/me", headers=bearer(by_username)).json()["remote_user"] == "carol"
    assert guards.wsgi.get("/me", headers=bearer(by_client)).json()["remote_user"] is None


@pytest.mark.parametrize("path", ["/health", "/public/", "/public/docs/index.html"])
def test_excluded_paths_need_no_token(guards: Guards, path: str) -> None:
    response = guards.wsgi.get(path)
    assert response.status_code == 200
    assert response.json()["token_info"] is False
    assert response.json()["remote_user"] is None


@pytest.mark.parametrize("path", ["/staff", "/healthz", "/publicity", "/public/a/%2E%2E/%2E%2E/me"])
def test_paths_outside_the_exclusions_are_protected(guards: Guards, path: str) -> None:
    assert guards.wsgi.get(path).status_code == 401


def test_a_cache_hit_makes_no_second_call(guards: Guards) -> None:
    token = guards.mint("alice", "orders:read")
    before = guards.auth.calls
    for _ in range(5):
        assert guards.wsgi.get("/me", headers=bearer(token)).status_code == 200
    assert guards.auth.calls - before == 1


def test_scopes_are_checked_on_every_request_not_cached(guards: Guards) -> None:
    token = guards.mint("alice", "orders:read")
    before = guards.auth.calls
    assert guards.wsgi.get("/me", headers=bearer(token)).status_code == 200
    assert guards.wsgi.get("/orders/write", headers=bearer(token)).status_code == 403
    assert guards.wsgi.get("/me", headers=bearer(token)).status_code == 200
    assert guards.auth.calls - before == 1


# ---------------------------------------------------------------- failing closed


def test_authorization_server_down_is_503_with_retry_after() -> None:
    with SyncIntrospector(
        closed_port_url(), client_id="c", client_secret="s", timeout=2
    ) as introspector:
        app = GenAuthGuardWSGI(echo_app, introspector=introspector)
        with httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
            response = client.get("http://wsgi/me", headers=bearer("abc"))
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "www-authenticate" not in response.headers
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": (
            "The authorization server could not check the access token; retry later."
        ),
    }


def test_slow_or_failing_server_is_503_and_its_retry_after_passes_on() -> None:
    with gated_auth_server() as gated:
        introspector = SyncIntrospector(
            gated.endpoint(), client_id="post-client", client_secret="post-secret", timeout=0.3
        )
        app = GenAuthGuardWSGI(echo_app, introspector=introspector)
        token = gated.server.mint("alice")
        with introspector, httpx.Client(transport=httpx.WSGITransport(app=app)) as client:
            with gated.failing(503):
                failed = client.get("http://wsgi/me", headers=bearer(token))
            with gated.slowed(0.6):
                started = time.monotonic()
                slow = client.get("http://wsgi/me", headers=bearer(token))
                waited = time.monotonic() - started
            recovered = client.get("http://wsgi/me", headers=bearer(token))
    assert (failed.status_code, failed.headers["retry-after"]) == (503, "7")
    assert (slow.status_code, slow.headers["retry-after"]) == (503, "5")
    assert waited < 0.6
    assert recovered.status_code == 200  # failures were not cached


# ---------------------------------------------------------------- folded headers, real server


def test_folded_authorization_headers_are_two_credentials() -> None:
    def values(header: str) -> list[str]:
        return authorization_values({"HTTP_AUTHORIZATION": header})

    assert values("Bearer abc") == ["Bearer abc"]
    assert values("Bearer abc,Bearer def") == ["Bearer abc", "Bearer def"]
    assert values("Basic dXNlcjpwYXNz,Bearer abc") == ["Basic dXNlcjpwYXNz", "Bearer abc"]
    # auth-params and quoted commas belong to one credential
    digest = 'Digest username="a, Bearer b", realm="x",qop=auth'
    assert values(digest) == [digest]
    assert values("Bearer a,b") == ["Bearer a,b"]
    assert authorization_values({}) == []


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", "Bearer abc"), ("Authorization", "Bearer abc")],
        [("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer abc")],
        [("Authorization", "Bearer abc"), ("Authorization", "Basic dXNlcjpwYXNz")],
    ],
)
def test_two_authorization_headers_through_a_real_wsgi_server(
    guards: Guards, headers: list[tuple[str, str]]
) -> None:
    """werkzeug folds repeated headers into one value; the guard unfolds it."""
    wsgi_guard = GenAuthGuardWSGI(echo_app, introspector=guards.introspector, **GUARD_OPTIONS)
    with werkzeug_server(wsgi_guard) as url:
        wsgi = httpx.get(url + "/me", headers=headers)
    asgi = httpx.get(guards.asgi_url + "/me", headers=headers)
    assert wsgi.status_code == 400
    assert "more than one Authorization header" in wsgi.json()["error_description"]
    assert answer(wsgi) == answer(asgi)


def test_the_guard_behind_a_real_wsgi_server(guards: Guards) -> None:
    token = guards.mint("alice", "orders:read")
    wsgi_guard = GenAuthGuardWSGI(routed, introspector=guards.introspector, **GUARD_OPTIONS)
    with werkzeug_server(wsgi_guard) as url, httpx.Client(base_url=url) as client:
        ok = client.get("/me", headers=bearer(token))
        no_token = client.get("/me")
        non_ascii = client.get("/me", headers=[("Authorization", "Bearer tök".encode())])
        excluded = client.get("/public/caf%C3%A9")
        dotted = client.get("/public/%2E%2E/me")
        denied = client.get("/orders/write", headers=bearer(token))
    assert ok.json()["remote_user"] == "alice"
    assert (no_token.status_code, no_token.headers["www-authenticate"]) == (
        401,
        f'Bearer realm="{REALM}"' + DPOP_OFFER,
    )
    assert non_ascii.status_code == 400
    assert excluded.status_code == 200
    assert dotted.status_code == 401
    assert denied.status_code == 403


# ---------------------------------------------------------------- configuration


def test_an_async_introspector_is_refused_with_advice(auth_server: RunningAuthServer) -> None:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    with pytest.raises(ConfigurationError, match="SyncIntrospector"):
        GenAuthGuardWSGI(echo_app, introspector=introspector)  # type: ignore[arg-type]


def test_bad_options_are_configuration_errors(guards: Guards) -> None:
    with pytest.raises(ConfigurationError, match="exclude_paths"):
        GenAuthGuardWSGI(echo_app, introspector=guards.introspector, exclude_paths=["health"])
    with pytest.raises(ConfigurationError, match="realm"):
        GenAuthGuardWSGI(echo_app, introspector=guards.introspector, realm='a"b')


def test_require_scopes_on_a_werkzeug_request_view(guards: Guards) -> None:
    from werkzeug.wrappers import Request, Response

    @Request.application
    @require_scopes("orders:read")
    def app(request: Request) -> Response:
        info = get_token_info(request)
        return Response(f"hello {info.sub if info else None}")

    guarded = GenAuthGuardWSGI(app, introspector=guards.introspector, realm=REALM)
    with httpx.Client(transport=httpx.WSGITransport(app=guarded)) as client:
        ok = client.get("http://wsgi/", headers=bearer(guards.mint("alice", "orders:read")))
        refused = client.get("http://wsgi/", headers=bearer(guards.mint("bob")))
    assert (ok.status_code, ok.text) == (200, "hello alice")
    assert refused.status_code == 403
    assert refused.headers["www-authenticate"].startswith(
        f'Bearer realm="{REALM}", error="insufficient_scope"'
    )
    assert refused.json()["error"] == "insufficient_scope"
