"""Scope strategies, ``match="any"`` and per-route ``rules``, on both guards, over HTTP.

One ASGI app (uvicorn) and one WSGI app (werkzeug), each with a guard per
scope strategy and one with rules, all asking the real dev authorization
server; every case is sent to both and must get the same answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from genauth_guard import (
    ConfigurationError,
    GenAuthGuard,
    Introspector,
    SyncIntrospector,
    require_scopes,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

STRATEGIES = ("exact", "hierarchic", "wildcard")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]

# (needed, granted, answer under exact, hierarchic, wildcard)
STRATEGY_CASES: list[tuple[str, str, int, int, int]] = [
    ("orders:read", "orders:read", 200, 200, 200),
    ("orders:read", "orders", 403, 200, 403),
    ("orders:read:own", "orders", 403, 200, 403),
    ("orders:read:own", "orders:read", 403, 200, 403),
    ("orders", "orders:read", 403, 403, 403),  # a child never covers its parent
    ("orders:read", "order", 403, 403, 403),  # "order" is no ancestor of "orders"
    ("orders:read", "orders:*", 403, 403, 200),
    ("orders:read:own", "orders:*", 403, 403, 200),
    ("orders:read:own", "orders:read:*", 403, 403, 200),
    ("orders", "orders:*", 403, 403, 403),  # a wildcard covers only what is below
    ("orders:read", "orders:read:*", 403, 403, 403),
    ("orders:read", "*", 403, 403, 403),  # a lone * is an ordinary scope name
    ("*", "*", 200, 200, 200),
    ("orders:read", "Orders:read", 403, 403, 403),  # case-sensitive
    ("orders:read", "ORDERS", 403, 403, 403),
]
NEEDED = sorted({case[0] for case in STRATEGY_CASES})
STRATEGY_RULES = [("GET", f"/need/{i}", scope) for i, scope in enumerate(NEEDED)]

RULES = [
    ("GET", "/orders/*", "orders:read"),
    ("POST", "/orders", "orders:write"),
    ("*", "/admin/*", ["admin"]),
    ("DELETE", "/orders/*", "orders:delete orders:write"),
]


# ---------------------------------------------------------------- the apps


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def asgi_inner() -> Starlette:
    return Starlette(
        routes=[
            Route("/any", require_scopes("orders:write", "admin", match="any")(echo)),
            Route("/inherit", require_scopes("orders:read:own")(echo)),
            Route("/pinned", require_scopes("orders:read:own", scope_strategy="wildcard")(echo)),
            Route("/{rest:path}", echo, methods=ALL_METHODS),
        ]
    )


def build_asgi(introspector: Introspector) -> Starlette:
    mounts = [
        Mount(
            f"/{s}",
            GenAuthGuard(
                asgi_inner(), introspector=introspector, scope_strategy=s, rules=STRATEGY_RULES
            ),
        )
        for s in STRATEGIES
    ]
    mounts.append(
        Mount(
            "/rules",
            GenAuthGuard(
                asgi_inner(), introspector=introspector, rules=RULES, required_scopes="api"
            ),
        )
    )
    return Starlette(routes=mounts)


def wsgi_echo(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


def wsgi_inner() -> WSGIApplication:
    routes: dict[str, Callable[..., Iterable[bytes]]] = {
        "/any": require_scopes("orders:write", "admin", match="any")(wsgi_echo),
        "/inherit": require_scopes("orders:read:own")(wsgi_echo),
        "/pinned": require_scopes("orders:read:own", scope_strategy="wildcard")(wsgi_echo),
    }

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return routes.get(environ["PATH_INFO"], wsgi_echo)(environ, start_response)

    return app


def build_wsgi(introspector: SyncIntrospector) -> WSGIApplication:
    guards: dict[str, WSGIApplication] = {
        f"/{s}": GenAuthGuardWSGI(
            wsgi_inner(), introspector=introspector, scope_strategy=s, rules=STRATEGY_RULES
        )
        for s in STRATEGIES
    }
    guards["/rules"] = GenAuthGuardWSGI(
        wsgi_inner(), introspector=introspector, rules=RULES, required_scopes="api"
    )

    def mounted(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ["PATH_INFO"]
        prefix = "/" + path.split("/")[1]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
        environ["PATH_INFO"] = path[len(prefix) :] or "/"
        return guards[prefix](environ, start_response)

    return mounted


class Servers:
    def __init__(self, auth: RunningAuthServer, urls: dict[str, str]) -> None:
        self.auth = auth
        self.urls = urls

    def token(self, scopes: str) -> str:
        return self.auth.server.mint(sub="alice", scopes=scopes)

    def send(self, kind: str, method: str, path: str, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.request(method, self.urls[kind] + path, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def servers(auth_server: RunningAuthServer) -> Iterator[Servers]:
    options: dict[str, Any] = {"client_id": "post-client", "client_secret": "post-secret"}
    sync = SyncIntrospector(auth_server.endpoint(), **options)
    asgi = build_asgi(Introspector(auth_server.endpoint(), **options))
    with serve_in_thread(asgi) as asgi_url, werkzeug_server(build_wsgi(sync)) as wsgi_url:
        yield Servers(auth_server, {"asgi": asgi_url, "wsgi": wsgi_url})
    sync.close()


KINDS = pytest.mark.parametrize("kind", ["asgi", "wsgi"])


def challenge(response: httpx.Response) -> str:
    """The Bearer challenge, once the DPoP one beside it is checked.

    ``dpop="allowed"`` (the default) offers DPoP too (RFC 9449 7.2): bare
    after an error in the Bearer challenge, with the same details (scope,
    resource metadata) when the request used no scheme.
    """
    value = response.headers.get("www-authenticate", "")
    bearer, offered, dpop = value.partition(', DPoP algs="ES256 RS256 PS256 EdDSA"')
    if offered:
        details = bearer.split('"', 2)[2]  # what follows realm="..."
        assert dpop == ("" if "error=" in details else details), value
    return bearer


# ---------------------------------------------------------------- strategies


@KINDS
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_covers_what_it_should_and_nothing_more(
    servers: Servers, kind: str, strategy: str
) -> None:
    column = 2 + STRATEGIES.index(strategy)
    got, expected = [], []
    for case in STRATEGY_CASES:
        needed, granted = case[0], case[1]
        path = f"/{strategy}/need/{NEEDED.index(needed)}"
        response = servers.send(kind, "GET", path, servers.token(granted))
        got.append((needed, granted, response.status_code))
        expected.append((needed, granted, case[column]))
        if response.status_code == 403:
            assert challenge(response) == (
                'Bearer realm="api", error="insufficient_scope", error_description='
                f'"The access token lacks the scope this resource needs: {needed}.", '
                f'scope="{needed}"'
            )
    assert got == expected


@KINDS
def test_require_scopes_inherits_the_guards_strategy(servers: Servers, kind: str) -> None:
    token = servers.token("orders")
    assert servers.send(kind, "GET", "/hierarchic/inherit", token).status_code == 200
    assert servers.send(kind, "GET", "/exact/inherit", token).status_code == 403
    assert servers.send(kind, "GET", "/wildcard/inherit", token).status_code == 403
    wildcard = servers.token("orders:*")
    assert servers.send(kind, "GET", "/wildcard/inherit", wildcard).status_code == 200
    assert servers.send(kind, "GET", "/hierarchic/inherit", wildcard).status_code == 403


@KINDS
def test_require_scopes_with_its_own_strategy_ignores_the_guards(
    servers: Servers, kind: str
) -> None:
    assert servers.send(kind, "GET", "/exact/pinned", servers.token("orders:*")).status_code == 200
    # Under a hierarchic guard, still wildcard: an ancestor is not enough here.
    denied = servers.send(kind, "GET", "/hierarchic/pinned", servers.token("orders"))
    assert denied.status_code == 403
    assert 'scope="orders:read:own"' in challenge(denied)


# ---------------------------------------------------------------- match="any"


@KINDS
@pytest.mark.parametrize("granted", ["admin", "orders:write", "admin orders:write other"])
def test_match_any_passes_with_one_of_the_scopes(servers: Servers, kind: str, granted: str) -> None:
    assert servers.send(kind, "GET", "/exact/any", servers.token(granted)).status_code == 200


@KINDS
def test_match_any_refusal_names_every_alternative(servers: Servers, kind: str) -> None:
    response = servers.send(kind, "GET", "/exact/any", servers.token("orders:read adm"))
    assert response.status_code == 403
    description = (
        "The access token needs one of these scopes (any one suffices): admin orders:write."
    )
    assert challenge(response) == (
        'Bearer realm="api", error="insufficient_scope", '
        f'error_description="{description}", scope="admin orders:write"'
    )
    assert json.loads(response.content) == {
        "error": "insufficient_scope",
        "error_description": description,
    }


@KINDS
def test_match_any_uses_the_guards_strategy_for_each_alternative(
    servers: Servers, kind: str
) -> None:
    token = servers.token("orders")  # covers orders:write only hierarchically
    assert servers.send(kind, "GET", "/hierarchic/any", token).status_code == 200
    assert servers.send(kind, "GET", "/exact/any", token).status_code == 403


# ---------------------------------------------------------------- rules

# (method, path, granted, status, scope named in the 403)
RULE_CASES: list[tuple[str, str, str, int, str | None]] = [
    ("GET", "/orders", "api orders:read", 200, None),  # a prefix rule covers the bare path
    ("GET", "/orders/7", "api orders:read", 200, None),
    ("GET", "/orders/7", "api", 403, "api orders:read"),
    ("GET", "/orders/7", "orders:read", 403, "api orders:read"),  # required_scopes still apply
    ("HEAD", "/orders/7", "api orders:read", 200, None),  # a GET rule covers HEAD
    ("HEAD", "/orders/7", "api", 403, "api orders:read"),
    ("POST", "/orders", "api orders:read", 403, "api orders:write"),
    ("POST", "/orders", "api orders:write", 200, None),
    ("POST", "/orders/", "api orders:read", 403, "api orders:write"),  # one trailing slash
    ("DELETE", "/orders/7", "api orders:write", 403, "api orders:delete orders:write"),
    ("DELETE", "/orders/7", "api orders:delete orders:write", 200, None),
    ("PUT", "/admin", "api", 403, "admin api"),  # "*": any method
    ("PATCH", "/admin/users/1", "api admin", 200, None),
    ("GET", "/elsewhere", "api", 200, None),  # no rule: required_scopes alone
    # Dot segments and doubled slashes cannot dodge a rule: both forms count.
    ("GET", "/public/%2E%2E/admin/x", "api", 403, "admin api"),
    ("GET", "/public/%2E%2E/admin/x", "api admin", 200, None),
    ("GET", "//admin/x", "api", 403, "admin api"),
    ("GET", "/orders/./7", "api", 403, "api orders:read"),
]


@KINDS
def test_rules_apply_by_method_and_path_on_top_of_required_scopes(
    servers: Servers, kind: str
) -> None:
    got, expected = [], []
    for method, path, granted, status, scope in RULE_CASES:
        response = servers.send(kind, method, "/rules" + path, servers.token(granted))
        named = None
        if response.status_code == 403:
            named = challenge(response).split('scope="')[1].rstrip('"')
        got.append((method, path, granted, response.status_code, named))
        expected.append((method, path, granted, status, scope))
    assert got == expected


@KINDS
def test_a_401_names_the_scopes_of_the_path(servers: Servers, kind: str) -> None:
    assert challenge(servers.send(kind, "GET", "/rules/orders/7")) == (
        'Bearer realm="api", scope="api orders:read"'
    )
    assert challenge(servers.send(kind, "GET", "/rules/elsewhere")) == (
        'Bearer realm="api", scope="api"'
    )
    inactive = servers.send(kind, "POST", "/rules/orders", "not-a-known-token")
    assert inactive.status_code == 401
    assert challenge(inactive).endswith(', scope="api orders:write"')
    assert 'error="invalid_token"' in challenge(inactive)
    # No rule and no required_scopes: a bare challenge, as before.
    assert challenge(servers.send(kind, "GET", "/exact/elsewhere")) == 'Bearer realm="api"'


@KINDS
def test_rules_are_checked_on_every_request_cached_answer_or_not(
    servers: Servers, kind: str
) -> None:
    token = servers.token("api orders:read")
    calls = servers.auth.calls
    assert servers.send(kind, "GET", "/rules/orders/1", token).status_code == 200
    assert servers.send(kind, "POST", "/rules/orders", token).status_code == 403
    assert servers.send(kind, "GET", "/rules/admin/x", token).status_code == 403
    assert servers.send(kind, "GET", "/rules/orders/2", token).status_code == 200
    assert servers.auth.calls == calls + 1  # one introspection; the rules ran four times


# ---------------------------------------------------------------- configuration


def _guards(**options: Any) -> list[Callable[[], object]]:
    introspector = Introspector(
        "https://example.genauth.ai/oidc/token/introspection", client_id="app", client_secret="s"
    )
    sync = SyncIntrospector(
        "https://example.genauth.ai/oidc/token/introspection", client_id="app", client_secret="s"
    )
    return [
        lambda: GenAuthGuard(echo, introspector=introspector, **options),
        lambda: GenAuthGuardWSGI(wsgi_echo, introspector=sync, **options),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"scope_strategy": "prefix"}, "is not a scope strategy"),
        ({"scope_strategy": "Exact"}, "is not a scope strategy"),
        ({"scope_strategy": None}, "is not a scope strategy"),
        ({"rules": "GET /orders orders:read"}, "must be a list"),
        ({"rules": [("GET", "/orders")]}, "must be a (method, path, scopes) tuple"),
        ({"rules": [["GET", "/orders", "a", "b"]]}, "must be a (method, path, scopes) tuple"),
        ({"rules": [("GET /x", "/orders", "a")]}, "must be an HTTP method"),
        ({"rules": [("", "/orders", "a")]}, "must be an HTTP method"),
        ({"rules": [(None, "/orders", "a")]}, "must be an HTTP method"),
        ({"rules": [("GET", "orders", "a")]}, "must start with '/'"),
        ({"rules": [("GET", "/orders*", "a")]}, "must start with '/'"),
        ({"rules": [("GET", "/*/items", "a")]}, "must start with '/'"),
        ({"rules": [("GET", "/a/../b", "a")]}, "'.'/'..' segments"),
        ({"rules": [("GET", "/a//b", "a")]}, "'//'"),
        ({"rules": [("GET", "/a?x=1", "a")]}, "query"),
        ({"rules": [("GET", "/orders", "")]}, "names no scope"),
        ({"rules": [("GET", "/orders", [])]}, "names no scope"),
        ({"rules": [("GET", "/orders", ["a b"])]}, "must be scope names"),
        ({"rules": [("GET", "/orders", 7)]}, "must be a space-separated string"),
        ({"rules": [("GET", "/orders", ['say "hi"'])]}, "must be scope names"),
        ({"required_scopes": ["orders:read", "é"]}, "must be scope names"),
    ],
)
def test_malformed_scope_options_fail_at_construction_on_both_guards(
    options: dict[str, Any], message: str
) -> None:
    for build in _guards(**options):
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert message in str(caught.value)


@pytest.mark.parametrize(
    ("scopes", "options", "message"),
    [
        (("a",), {"match": "some"}, "must be 'all'"),
        (("a",), {"scope_strategy": "fuzzy"}, "is not a scope strategy"),
        (("a b",), {}, "must be scope names"),
    ],
)
def test_malformed_require_scopes_fails_when_decorating(
    scopes: tuple[str, ...], options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        require_scopes(*scopes, **options)
