"""from_discovery against the dev server's discovery documents, and documents it must refuse."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from genauth_guard import (
    AuthorizationServerUnavailable,
    ConfigurationError,
    Introspector,
    ServerMetadata,
    SyncIntrospector,
)
from genauth_guard.dev.server import DevAuthServer, DevClient
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.discovery import clear_metadata_cache, metadata_locations

from .conftest import CLIENTS, RunningAuthServer

Document = Callable[[str], dict[str, Any]]


@dataclass
class CountingDocuments:
    """A real server: the dev server's routes, extra documents, and a count of GETs per path."""

    server: DevAuthServer
    documents: dict[str, Document]
    gets: dict[str, int] = field(default_factory=dict)

    def app(self) -> ASGIApp:
        routes: list[Route | Mount] = [
            Route(path, self._document(make)) for path, make in self.documents.items()
        ]
        inner = Starlette(routes=[*routes, Mount("/", self.server.app)])

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and scope["method"] == "GET":
                self.gets[scope["path"]] = self.gets.get(scope["path"], 0) + 1
            await inner(scope, receive, send)

        return counting

    def _document(self, make: Document) -> Callable[[Request], Any]:
        async def endpoint(request: Request) -> Response:
            return JSONResponse(make(str(request.base_url).rstrip("/")))

        return endpoint


def wrong_issuer(base: str) -> dict[str, Any]:
    """A document at /evil that claims to be the /oidc issuer's (a mix-up)."""
    return {
        "issuer": f"{base}/oidc",
        "introspection_endpoint": f"{base}/oidc/token/introspection",
    }


def plain_http_endpoint(base: str) -> dict[str, Any]:
    return {
        "issuer": f"{base}/cleartext",
        "introspection_endpoint": "http://auth.example.com/introspect",
    }


def without_introspection(base: str) -> dict[str, Any]:
    return {"issuer": f"{base}/nointrospection", "token_endpoint": f"{base}/oidc/token"}


def rfc8414_only(base: str) -> dict[str, Any]:
    return {
        "issuer": f"{base}/rfc8414",
        "introspection_endpoint": f"{base}/oidc/token/introspection",
        "introspection_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_post"],
    }


def exotic_methods_only(base: str) -> dict[str, Any]:
    return {
        "issuer": f"{base}/exotic",
        "introspection_endpoint": f"{base}/oidc/token/introspection",
        "introspection_endpoint_auth_methods_supported": [
            "tls_client_auth",
            "self_signed_tls_client_auth",
        ],
    }


DOCUMENTS: dict[str, Document] = {
    "/evil/.well-known/openid-configuration": wrong_issuer,
    "/cleartext/.well-known/openid-configuration": plain_http_endpoint,
    "/nointrospection/.well-known/openid-configuration": without_introspection,
    "/.well-known/oauth-authorization-server/rfc8414": rfc8414_only,
    "/exotic/.well-known/openid-configuration": exotic_methods_only,
}


@pytest.fixture(autouse=True)
def fresh_metadata_cache() -> Iterator[None]:
    clear_metadata_cache()
    yield
    clear_metadata_cache()


@pytest.fixture(scope="module")
def documents() -> Iterator[tuple[CountingDocuments, str]]:
    counting = CountingDocuments(DevAuthServer(CLIENTS), DOCUMENTS)
    with serve_in_thread(counting.app()) as url:
        counting.server.issuer = url
        yield counting, url


@pytest.fixture(scope="module")
def basic_and_public_server() -> Iterator[tuple[DevAuthServer, str]]:
    """A server whose clients authenticate only with client_secret_basic or none."""
    server = DevAuthServer(
        [
            DevClient("basic-only", "basic secret", "client_secret_basic"),
            DevClient("public-only", None, "none"),
        ]
    )
    with serve_in_thread(server.app) as url:
        server.issuer = url
        yield server, url


# ---------------------------------------------------------------- discovery that works


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["oidc", "oauth"])
async def test_discovery_from_the_issuer(auth_server: RunningAuthServer, protocol: str) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    introspector = Introspector.from_discovery(
        f"{auth_server.url}/{protocol}", "post-client", "post-secret"
    )
    async with introspector:
        assert introspector.introspection_endpoint == auth_server.endpoint(protocol)
        assert introspector.revocation_endpoint == f"{auth_server.url}/{protocol}/token/revocation"
        assert introspector.auth_method == "client_secret_post"
        metadata = introspector.server_metadata
        assert isinstance(metadata, ServerMetadata)
        assert metadata.issuer == f"{auth_server.url}/{protocol}"
        assert metadata.document["token_endpoint"] == f"{auth_server.url}/{protocol}/token"
        assert (await introspector.introspect(token)).sub == "alice"
        await introspector.revoke(token)
        assert not (await introspector.introspect(token)).active


@pytest.mark.parametrize(
    "location",
    [
        "{url}/oidc/.well-known/openid-configuration",
        "{url}/.well-known/oauth-authorization-server/oidc",
    ],
)
def test_discovery_from_either_document_url(auth_server: RunningAuthServer, location: str) -> None:
    token = auth_server.server.mint("bob")
    with SyncIntrospector.from_discovery(
        location.format(url=auth_server.url), "basic-client", "basic:secret with spaces",
        auth_method="client_secret_basic",
    ) as introspector:  # fmt: skip
        assert introspector.server_metadata is not None
        assert introspector.server_metadata.issuer == f"{auth_server.url}/oidc"
        assert introspector.introspect(token).sub == "bob"


def test_the_rfc8414_location_is_tried_when_openid_has_none(
    documents: tuple[CountingDocuments, str],
) -> None:
    counting, url = documents
    with SyncIntrospector.from_discovery(f"{url}/rfc8414", "post-client", "post-secret") as found:
        assert found.server_metadata is not None
        assert found.server_metadata.url == f"{url}/.well-known/oauth-authorization-server/rfc8414"
        assert found.auth_method == "client_secret_post"  # the one of ours the server lists
        assert found.revocation_endpoint is None
    assert counting.gets["/rfc8414/.well-known/openid-configuration"] >= 1  # tried first: 404


def test_the_document_is_fetched_once_and_cached(
    documents: tuple[CountingDocuments, str],
) -> None:
    counting, url = documents
    path = "/oidc/.well-known/openid-configuration"
    before = counting.gets.get(path, 0)
    first = SyncIntrospector.from_discovery(f"{url}/oidc", "post-client", "post-secret")
    second = Introspector.from_discovery(f"{url}/oidc", "public-client")
    assert counting.gets[path] == before + 1
    assert first.server_metadata is second.server_metadata
    assert second.auth_method == "none"  # no secret: the server lists none
    clear_metadata_cache()
    SyncIntrospector.from_discovery(f"{url}/oidc", "post-client", "post-secret").close()
    assert counting.gets[path] == before + 2
    first.close()


# ---------------------------------------------------------------- choosing the auth method


@pytest.mark.anyio
async def test_a_method_the_server_supports_is_chosen(
    basic_and_public_server: tuple[DevAuthServer, str],
) -> None:
    """The server lists client_secret_basic and none: a secret means basic, no secret none."""
    server, url = basic_and_public_server
    with_secret = Introspector.from_discovery(f"{url}/oidc", "basic-only", "basic secret")
    public = Introspector.from_discovery(f"{url}/oidc", "public-only")
    assert with_secret.auth_method == "client_secret_basic"
    assert with_secret.revocation_auth.method == "client_secret_basic"
    assert public.auth_method == "none"
    token = server.mint("carol", client_id="basic-only")
    async with with_secret, public:
        assert (await with_secret.introspect(token)).sub == "carol"
        assert (await public.introspect(token)).sub == "carol"


def test_an_explicit_method_wins_with_a_warning_if_not_advertised(
    basic_and_public_server: tuple[DevAuthServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = basic_and_public_server
    with caplog.at_level(logging.WARNING, logger="genauth_guard"):
        introspector = SyncIntrospector.from_discovery(
            f"{url}/oidc", "basic-only", "basic secret", auth_method="client_secret_post"
        )
    assert introspector.auth_method == "client_secret_post"
    assert "auth_method='client_secret_post' is not among the methods the server" in caplog.text
    introspector.close()


def test_no_secret_where_the_server_needs_one_is_refused(
    documents: tuple[CountingDocuments, str],
) -> None:
    _, url = documents
    with pytest.raises(
        ConfigurationError, match=r"needs a client secret here .* pass client_secret"
    ):
        Introspector.from_discovery(f"{url}/rfc8414", "public-client")


# ---------------------------------------------------------------- documents that are refused


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/evil", "names the issuer '{url}/oidc', not '{url}/evil' (RFC 8414 3.3)"),
        ("/cleartext", "uses plain http"),
        ("/nointrospection", "has no introspection_endpoint"),
        ("/exotic", "lists only tls_client_auth, self_signed_tls_client_auth"),
        ("/nowhere", "No usable discovery document at {url}/.well-known/oauth-authorization-"
                     "server/nowhere (HTTP 404)"),
    ],
)  # fmt: skip
def test_a_wrong_document_is_refused(
    documents: tuple[CountingDocuments, str], path: str, message: str
) -> None:
    _, url = documents
    with pytest.raises(ConfigurationError, match=re.escape(message.format(url=url))):
        SyncIntrospector.from_discovery(url + path, "post-client", "post-secret")


def test_a_refused_document_is_not_cached(documents: tuple[CountingDocuments, str]) -> None:
    counting, url = documents
    path = "/evil/.well-known/openid-configuration"
    before = counting.gets.get(path, 0)
    for _ in range(2):
        with pytest.raises(ConfigurationError):
            Introspector.from_discovery(f"{url}/evil", "post-client", "post-secret")
    assert counting.gets[path] == before + 2


def test_an_unreachable_server_is_unavailable_not_misconfigured() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(AuthorizationServerUnavailable, match="could not be reached"):
        Introspector.from_discovery(f"http://127.0.0.1:{port}/oidc", "post-client", "secret")


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("example.genauth.ai/oidc", "must be an absolute https:// URL"),
        ("http://example.genauth.ai/oidc", "plain http"),
        ("https://example.genauth.ai/oidc?x=1", "must not have a ?query"),
        ("https://example.genauth.ai/.well-known/jwks.json", "is neither an issuer nor"),
    ],
)
def test_a_wrong_issuer_url_is_refused_before_any_request(location: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Introspector.from_discovery(location, "app", "secret")


@pytest.mark.parametrize(
    ("given", "issuer", "urls"),
    [
        (
            "https://a.genauth.ai/oidc",
            "https://a.genauth.ai/oidc",
            (
                "https://a.genauth.ai/oidc/.well-known/openid-configuration",
                "https://a.genauth.ai/.well-known/oauth-authorization-server/oidc",
            ),
        ),
        (
            "https://a.genauth.ai",
            "https://a.genauth.ai",
            (
                "https://a.genauth.ai/.well-known/openid-configuration",
                "https://a.genauth.ai/.well-known/oauth-authorization-server",
            ),
        ),
        (
            "https://a.genauth.ai/oidc/.well-known/openid-configuration",
            "https://a.genauth.ai/oidc",
            ("https://a.genauth.ai/oidc/.well-known/openid-configuration",),
        ),
        (
            "https://a.genauth.ai/.well-known/oauth-authorization-server/tenant/x",
            "https://a.genauth.ai/tenant/x",
            ("https://a.genauth.ai/.well-known/oauth-authorization-server/tenant/x",),
        ),
    ],
)
def test_metadata_locations(given: str, issuer: str, urls: tuple[str, ...]) -> None:
    assert metadata_locations(given) == (issuer, urls)
