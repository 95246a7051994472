"""RFC 9728 protected-resource metadata and RFC 8707 audience, on both guards, over HTTP.

Each configuration is served twice, by ``GenAuthGuard`` (uvicorn) and by
``GenAuthGuardWSGI`` (werkzeug), in front of the real dev authorization
server; documents and challenges are checked field by field on both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
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
from .wsgi_support import closed_port_url, werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

RESOURCE = "https://api.example.com/mcp"
METADATA_URL = "https://api.example.com/.well-known/oauth-protected-resource/mcp"
ISSUER = "https://example.genauth.ai/oidc"
FIELDS: dict[str, Any] = {
    "resource": RESOURCE,
    "authorization_servers": [ISSUER],
    "scopes_supported": ["orders:read", "orders:write"],
    "resource_name": "Orders",
    "resource_documentation": "https://api.example.com/docs",
    "x_vendor_extension": {"tier": 2, "regions": ["eu", "us"]},
}
DOCUMENT = {**FIELDS, "bearer_methods_supported": ["header"]}
OTHER = "https://other.example.com/api"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
KINDS = pytest.mark.parametrize("kind", ["asgi", "wsgi"])
DOCUMENT_PATHS = pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"]
)


# ---------------------------------------------------------------- the apps


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def asgi_inner() -> Starlette:
    return Starlette(
        routes=[
            Route("/write", require_scopes("orders:write")(echo), methods=["GET", "POST"]),
            Route("/{rest:path}", echo, methods=ALL_METHODS),
        ]
    )


def wsgi_echo(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


wsgi_write = require_scopes("orders:write")(wsgi_echo)


def wsgi_inner(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/write":
        return wsgi_write(environ, start_response)
    return wsgi_echo(environ, start_response)


MAIN: dict[str, Any] = {
    "protected_resource": FIELDS,
    "rules": [("*", "/orders/*", "orders:read")],
    "exclude_paths": ["/health"],
}
CONFIGS: dict[str, dict[str, Any]] = {
    "main": MAIN,
    "query": {
        "protected_resource": {"resource": "http://127.0.0.1:8000"},
        "allow_query_token": True,
    },
    "given": {
        "protected_resource": {"resource": RESOURCE, "bearer_methods_supported": ["header"]},
        "allow_query_token": True,
    },
}


class Served:
    """The same configurations, served by both guards."""

    def __init__(self, auth: RunningAuthServer) -> None:
        self.auth = auth
        self.urls: dict[tuple[str, str], str] = {}

    def token(self, scopes: str = "orders:read", aud: Any = RESOURCE) -> str:
        audience = () if aud is None else aud
        return self.auth.server.mint(sub="alice", scopes=scopes, audience=audience)

    def send(
        self,
        kind: str,
        method: str,
        path: str,
        token: str | None = None,
        *,
        config: str = "main",
        headers: Any = None,
    ) -> httpx.Response:
        sent = list(headers or [])
        if token:
            sent.append(("Authorization", f"Bearer {token}"))
        url = self.urls[(config, kind)] + path
        return httpx.request(method, url, headers=sent, timeout=10)


@pytest.fixture(scope="module")
def served(auth_server: RunningAuthServer) -> Iterator[Served]:
    credentials = {"client_id": "post-client", "client_secret": "post-secret"}
    result = Served(auth_server)
    with ExitStack() as stack:
        sync = SyncIntrospector(auth_server.endpoint(), **credentials)
        stack.callback(sync.close)
        asgi_introspector = Introspector(auth_server.endpoint(), **credentials)
        # "down": the main configuration, with an authorization server nobody runs.
        down = closed_port_url()
        sync_down = SyncIntrospector(down, retries=0, **credentials)
        stack.callback(sync_down.close)
        introspectors: dict[str, tuple[Any, Any]] = {
            name: (asgi_introspector, sync) for name in CONFIGS
        }
        introspectors["down"] = (Introspector(down, retries=0, **credentials), sync_down)
        for name, (intro, sync_intro) in introspectors.items():
            options = CONFIGS.get(name, MAIN)
            asgi = GenAuthGuard(asgi_inner(), introspector=intro, **options)
            wsgi = GenAuthGuardWSGI(wsgi_inner, introspector=sync_intro, **options)
            result.urls[(name, "asgi")] = stack.enter_context(serve_in_thread(asgi))
            result.urls[(name, "wsgi")] = stack.enter_context(werkzeug_server(wsgi))
        yield result


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


# ---------------------------------------------------------------- the document


@KINDS
@DOCUMENT_PATHS
def test_the_document_is_served_without_a_token_field_by_field(
    served: Served, kind: str, path: str
) -> None:
    response = served.send(kind, "GET", path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["cache-control"] == "public, max-age=300"
    assert response.headers["x-content-type-options"] == "nosniff"
    document = response.json()
    assert document == DOCUMENT
    assert document["resource"] == RESOURCE
    assert document["authorization_servers"] == [ISSUER]
    assert document["scopes_supported"] == ["orders:read", "orders:write"]
    assert document["bearer_methods_supported"] == ["header"]
    assert document["resource_name"] == "Orders"
    assert document["resource_documentation"] == "https://api.example.com/docs"
    assert document["x_vendor_extension"] == {"tier": 2, "regions": ["eu", "us"]}
    assert "www-authenticate" not in response.headers


@KINDS
def test_head_has_the_headers_of_get_and_no_body(served: Served, kind: str) -> None:
    path = "/.well-known/oauth-protected-resource/mcp"
    get = served.send(kind, "GET", path)
    head = served.send(kind, "HEAD", path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.content))
    assert head.headers["content-type"] == "application/json"
    assert head.headers["access-control-allow-origin"] == "*"


@KINDS
def test_a_cors_preflight_is_answered(served: Served, kind: str) -> None:
    response = served.send(
        kind,
        "OPTIONS",
        "/.well-known/oauth-protected-resource/mcp",
        headers=[
            ("Origin", "https://app.example.org"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "mcp-protocol-version"),
        ],
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.headers["access-control-allow-methods"] == "GET, HEAD"
    assert response.headers["access-control-allow-headers"] == "*"
    assert response.content == b""


@KINDS
@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
def test_other_methods_are_405_with_allow(served: Served, kind: str, method: str) -> None:
    response = served.send(kind, method, "/.well-known/oauth-protected-resource/mcp")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["access-control-allow-origin"] == "*"
    assert response.json()["error"] == "method_not_allowed"


@KINDS
def test_the_host_header_never_changes_the_document_or_the_challenge(
    served: Served, kind: str
) -> None:
    evil = [("Host", "evil.example.net"), ("X-Forwarded-Host", "evil.example.net")]
    document = served.send(kind, "GET", "/.well-known/oauth-protected-resource/mcp", headers=evil)
    assert document.json()["resource"] == RESOURCE
    refused = served.send(kind, "GET", "/orders/1", headers=evil)
    assert f'resource_metadata="{METADATA_URL}"' in challenge(refused)
    assert "evil" not in challenge(refused)


@KINDS
def test_a_query_string_does_not_hide_the_document(served: Served, kind: str) -> None:
    response = served.send(kind, "GET", "/.well-known/oauth-protected-resource/mcp?x=1")
    assert response.json() == DOCUMENT


@KINDS
def test_other_well_known_paths_stay_protected(served: Served, kind: str) -> None:
    for path in (
        "/.well-known/oauth-protected-resource/other",
        "/.well-known/oauth-protected-resource/mcp/x",
        "/mcp/.well-known/oauth-protected-resource",
    ):
        assert served.send(kind, "GET", path).status_code == 401


@KINDS
def test_the_document_is_served_while_the_authorization_server_is_down(
    served: Served, kind: str
) -> None:
    assert served.send(
        kind, "GET", "/.well-known/oauth-protected-resource/mcp", config="down"
    ).json() == (DOCUMENT)
    failed = served.send(kind, "GET", "/orders/1", served.token(), config="down")
    assert failed.status_code == 503
    assert "www-authenticate" not in failed.headers  # a 503 has no challenge to carry it
    assert failed.headers["retry-after"]


@KINDS
def test_allow_query_token_adds_query_and_a_root_resource_lives_at_the_root(
    served: Served, kind: str
) -> None:
    response = served.send(kind, "GET", "/.well-known/oauth-protected-resource", config="query")
    assert response.json() == {
        "resource": "http://127.0.0.1:8000",
        "bearer_methods_supported": ["header", "query"],
    }
    refused = served.send(kind, "GET", "/x", config="query")
    assert challenge(refused) == (
        'Bearer realm="api", '
        'resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource"'
    )


@KINDS
def test_a_given_bearer_methods_value_stands(served: Served, kind: str) -> None:
    response = served.send(kind, "GET", "/.well-known/oauth-protected-resource/mcp", config="given")
    assert response.json()["bearer_methods_supported"] == ["header"]


# ---------------------------------------------------------------- challenges


@KINDS
def test_every_challenge_names_the_metadata_url(served: Served, kind: str) -> None:
    rm = f'resource_metadata="{METADATA_URL}"'
    # 401 without a token, on a path whose rule names a scope: scope= too.
    no_token = served.send(kind, "GET", "/orders/1")
    assert no_token.status_code == 401
    assert challenge(no_token) == f'Bearer realm="api", scope="orders:read", {rm}'
    # 401 without a token on a path that needs no scope.
    assert challenge(served.send(kind, "GET", "/plain")) == f'Bearer realm="api", {rm}'
    # 400: the token twice.
    twice = served.send(
        kind, "GET", "/plain", served.token(), headers=[("Authorization", "Bearer other")]
    )
    assert twice.status_code == 400
    assert challenge(twice).startswith('Bearer realm="api", error="invalid_request", ')
    assert challenge(twice).endswith(rm)
    # 401: an unknown token.
    unknown = served.send(kind, "GET", "/orders/1", "unknown-token")
    assert unknown.status_code == 401
    assert challenge(unknown) == (
        'Bearer realm="api", error="invalid_token", error_description="The access token is '
        'not active (expired, revoked or unknown); get a new one.", scope="orders:read", ' + rm
    )
    # 403 from the guard's rule.
    lacking = served.send(kind, "GET", "/orders/1", served.token("orders:write"))
    assert lacking.status_code == 403
    assert challenge(lacking) == (
        'Bearer realm="api", error="insufficient_scope", error_description="The access '
        'token lacks the scope this resource needs: orders:read.", scope="orders:read", ' + rm
    )
    # 403 from require_scopes under the guard: MCP clients step up from it.
    decorated = served.send(kind, "GET", "/write", served.token("orders:read"))
    assert decorated.status_code == 403
    assert challenge(decorated) == (
        'Bearer realm="api", error="insufficient_scope", error_description="The access '
        'token lacks the scope this resource needs: orders:write.", scope="orders:write", ' + rm
    )
    # Excluded paths stay open.
    assert served.send(kind, "GET", "/health").status_code == 200


# ---------------------------------------------------------------- audience (RFC 8707)


@KINDS
@pytest.mark.parametrize(
    "aud",
    [RESOURCE, [OTHER, RESOURCE], RESOURCE + "/", [RESOURCE + "/"]],
    ids=["string", "list", "trailing-slash", "list-trailing-slash"],
)
def test_a_token_issued_for_the_resource_passes(served: Served, kind: str, aud: Any) -> None:
    response = served.send(kind, "GET", "/orders/1", served.token(aud=aud))
    assert response.status_code == 200
    assert response.text == "ok"


@KINDS
@pytest.mark.parametrize(
    "aud",
    [
        OTHER,
        [OTHER, "https://api.example.com"],
        "https://api.example.com/mcp/tools",
        "https://api.example.com/mc",
        "HTTPS://api.example.com/mcp",
        "https://api.example.com/mcp//",
        None,
    ],
    ids=["other", "other-list", "below", "prefix", "case", "two-slashes", "no-aud"],
)
def test_a_token_for_another_audience_is_refused(served: Served, kind: str, aud: Any) -> None:
    response = served.send(kind, "GET", "/plain", served.token(aud=aud))
    assert response.status_code == 401
    description = (
        f"The access token was not issued for this resource: its aud must name {RESOURCE} "
        f"(RFC 8707); ask the authorization server for a token with resource={RESOURCE}."
    )
    assert challenge(response) == (
        f'Bearer realm="api", error="invalid_token", error_description="{description}", '
        f'resource_metadata="{METADATA_URL}"'
    )
    assert json.loads(response.content) == {
        "error": "invalid_token",
        "error_description": description,
    }


@KINDS
def test_the_audience_is_checked_on_cached_answers_too(served: Served, kind: str) -> None:
    token = served.token(aud=OTHER)
    calls = served.auth.calls
    for _ in range(3):
        assert served.send(kind, "GET", "/plain", token).status_code == 401
    assert served.auth.calls == calls + 1  # one introspection, refused three times


def _two_resources_asgi(introspector: Introspector) -> Starlette:
    return Starlette(
        routes=[
            Mount(
                "/a",
                GenAuthGuard(
                    asgi_inner(),
                    introspector=introspector,
                    protected_resource={"resource": RESOURCE},
                ),
            ),
            Mount(
                "/b",
                GenAuthGuard(
                    asgi_inner(), introspector=introspector, protected_resource={"resource": OTHER}
                ),
            ),
        ]
    )


def _two_resources_wsgi(introspector: SyncIntrospector) -> WSGIApplication:
    guards = {
        "/a": GenAuthGuardWSGI(
            wsgi_inner, introspector=introspector, protected_resource={"resource": RESOURCE}
        ),
        "/b": GenAuthGuardWSGI(
            wsgi_inner, introspector=introspector, protected_resource={"resource": OTHER}
        ),
    }

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        prefix = environ["PATH_INFO"][:2]
        environ["SCRIPT_NAME"] = prefix
        environ["PATH_INFO"] = environ["PATH_INFO"][2:] or "/"
        return guards[prefix](environ, start_response)

    return app


@KINDS
def test_one_introspector_serves_two_guards_for_two_resources(
    auth_server: RunningAuthServer, kind: str
) -> None:
    credentials = {"client_id": "post-client", "client_secret": "post-secret"}
    with ExitStack() as stack:
        if kind == "asgi":
            app: Any = _two_resources_asgi(Introspector(auth_server.endpoint(), **credentials))
            url = stack.enter_context(serve_in_thread(app))
        else:
            sync = SyncIntrospector(auth_server.endpoint(), **credentials)
            stack.callback(sync.close)
            url = stack.enter_context(werkzeug_server(_two_resources_wsgi(sync)))
        for_a = auth_server.server.mint(sub="alice", audience=RESOURCE)
        for_b = auth_server.server.mint(sub="alice", audience=OTHER)
        calls = auth_server.calls

        def status(path: str, token: str) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            return httpx.get(url + path, headers=headers, timeout=10).status_code

        assert [status("/a/x", for_a), status("/b/x", for_a)] == [200, 401]
        assert [status("/b/x", for_b), status("/a/x", for_b)] == [200, 401]
        assert [status("/a/y", for_a), status("/b/y", for_b)] == [200, 200]
        assert auth_server.calls == calls + 2  # each token asked once, then cached for both


@KINDS
def test_the_introspectors_own_audience_rule_stands_instead(
    auth_server: RunningAuthServer, kind: str
) -> None:
    credentials: dict[str, Any] = {
        "client_id": "post-client",
        "client_secret": "post-secret",
        "audience": "orders-api",
    }
    options = {"protected_resource": {"resource": RESOURCE}}
    with ExitStack() as stack:
        if kind == "asgi":
            guard: Any = GenAuthGuard(
                asgi_inner(),
                introspector=Introspector(auth_server.endpoint(), **credentials),
                **options,
            )
            url = stack.enter_context(serve_in_thread(guard))
        else:
            sync = SyncIntrospector(auth_server.endpoint(), **credentials)
            stack.callback(sync.close)
            url = stack.enter_context(
                werkzeug_server(GenAuthGuardWSGI(wsgi_inner, introspector=sync, **options))
            )

        def status(aud: str) -> int:
            token = auth_server.server.mint(sub="alice", audience=aud)
            return httpx.get(url + "/x", headers={"Authorization": f"Bearer {token}"}).status_code

        assert status("orders-api") == 200  # the introspector's rule, not the resource
        assert status(RESOURCE) == 401


# ---------------------------------------------------------------- configuration


def _guards(**options: Any) -> list[Callable[[], object]]:
    endpoint = "https://example.genauth.ai/oidc/token/introspection"
    credentials = {"client_id": "app", "client_secret": "s"}
    introspector = Introspector(endpoint, **credentials)
    sync = SyncIntrospector(endpoint, **credentials)
    return [
        lambda: GenAuthGuard(echo, introspector=introspector, **options),
        lambda: GenAuthGuardWSGI(wsgi_echo, introspector=sync, **options),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("https://api.example.com/mcp", "must be a dict of RFC 9728 fields"),
        ({}, "needs 'resource'"),
        ({"authorization_servers": [ISSUER]}, "needs 'resource'"),
        ({"resource": "api.example.com/mcp"}, "must be an absolute URL"),
        ({"resource": "/mcp"}, "must be an absolute URL"),
        ({"resource": "ftp://api.example.com/mcp"}, "must be an absolute URL"),
        ({"resource": "http://api.example.com/mcp"}, "must use https://"),
        ({"resource": "https://api.example.com/mcp?x=1"}, "no query and no #fragment"),
        ({"resource": "https://api.example.com/mcp?"}, "no query and no #fragment"),
        ({"resource": "https://api.example.com/mcp#top"}, "no query and no #fragment"),
        ({"resource": "https://user:pw@api.example.com/mcp"}, "must not carry credentials"),
        ({"resource": "https://api.example.com:99999/mcp"}, "is not a valid URL"),
        ({"resource": "https://api.example.com/a/../mcp"}, "'.' or '..' segments"),
        ({"resource": "https://api.example.com/ mcp"}, "in ASCII"),
        ({"resource": "https://api.example.com/médias"}, "in ASCII"),
        ({"resource": 'https://api.example.com/"mcp'}, "in ASCII"),
        ({"resource": None}, "must be an absolute URL"),
        ({"resource": RESOURCE, "authorization_servers": ISSUER}, "must be a list of strings"),
        ({"resource": RESOURCE, "authorization_servers": []}, "is empty"),
        ({"resource": RESOURCE, "authorization_servers": ["example.genauth.ai"]}, "absolute URL"),
        (
            {"resource": RESOURCE, "authorization_servers": ["http://example.genauth.ai/oidc"]},
            "must use https://",
        ),
        ({"resource": RESOURCE, "scopes_supported": ["a b"]}, "scope names without spaces"),
        ({"resource": RESOURCE, "scopes_supported": [""]}, "non-empty strings"),
        ({"resource": RESOURCE, "scopes_supported": 5}, "must be a list of strings"),
        ({"resource": RESOURCE, "bearer_methods_supported": ["cookie"]}, "'header', 'body'"),
        ({"resource": RESOURCE, "bearer_methods_supported": "header"}, "list of strings"),
        ({"resource": RESOURCE, "jwks_uri": "http://keys.example.com/jwks"}, "https://"),
        ({"resource": RESOURCE, "resource_documentation": "docs"}, "absolute URL"),
        ({"resource": RESOURCE, "resource_signing_alg_values_supported": ["none"]}, "'none'"),
        ({"resource": RESOURCE, "dpop_bound_access_tokens_required": "yes"}, "True or False"),
        ({"resource": RESOURCE, "resource_name": ""}, "non-empty string"),
        ({"resource": RESOURCE, "resource_name#ja": 3}, "non-empty string"),
        ({"resource": RESOURCE, "x_when": object()}, "must be a JSON value"),
        ({"resource": RESOURCE, "x_nan": float("nan")}, "must be a JSON value"),
        ({"resource": RESOURCE, 7: "x"}, "has a field named 7"),
    ],
)
def test_malformed_protected_resource_fails_at_construction_on_both_guards(
    fields: Any, message: str
) -> None:
    for build in _guards(protected_resource=fields):
        with pytest.raises(ConfigurationError) as caught:
            build()
        assert message in str(caught.value)


def test_loopback_http_and_language_tags_are_accepted(auth_server: RunningAuthServer) -> None:
    for resource in ("http://127.0.0.1:8000/mcp", "http://localhost/mcp", "http://[::1]:8000/"):
        for build in _guards(
            protected_resource={
                "resource": resource,
                "resource_name#ja": "注文",
                "authorization_servers": ["http://127.0.0.1:9000/oidc"],
            }
        ):
            build()
