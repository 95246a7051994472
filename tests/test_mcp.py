"""MCP servers: examples/mcp_server.py, with the real ``mcp`` SDK client, over HTTP.

The example is served by uvicorn on 127.0.0.1, behind ``GenAuthGuard``, in
front of the dev authorization server; the SDK's streamable-HTTP client (and
its OAuth client) talks to it. The same tools wired the SDK's way, with
``GenAuthTokenVerifier``, must accept and refuse alike.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import httpx
import httpx2
import pytest
from mcp.client.auth import OAuthClientProvider
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from genauth_guard import (
    ConfigurationError,
    IntrospectionError,
    Introspector,
    SyncIntrospector,
    TokenInfo,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.mcp import GenAuthTokenVerifier, MCPAuthBridge

from .conftest import RunningAuthServer
from .wsgi_support import bound_socket, closed_port_url

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "mcp_server.py"
CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}
ACCEPT = "application/json, text/event-stream"

pytestmark = pytest.mark.anyio


def load_example(env: dict[str, str]) -> ModuleType:
    """Import examples/mcp_server.py as ``uvicorn examples.mcp_server:app`` would."""
    spec = importlib.util.spec_from_file_location("_example_mcp_server", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ, env):
        spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with bound_socket() as sock:
        return int(sock.getsockname()[1])


@dataclass
class McpServer:
    url: str  # the MCP endpoint, also the RFC 9728 resource
    auth: RunningAuthServer

    @property
    def base(self) -> str:
        return self.url.rsplit("/", 1)[0]

    @property
    def metadata_url(self) -> str:
        return f"{self.base}/.well-known/oauth-protected-resource/mcp"

    def token(self, scopes: str = "orders:read", aud: Any = None, sub: str = "alice") -> str:
        audience = self.url if aud is None else aud
        return self.auth.server.mint(sub=sub, scopes=scopes, audience=audience)


@contextmanager
def serving(build: Callable[[str], Any]) -> Iterator[str]:
    """Serve ``build(resource)`` on a port chosen first, so the resource URL can name it."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    with serve_in_thread(build(resource), port=port):
        yield resource


@pytest.fixture(scope="module")
def example(auth_server: RunningAuthServer) -> Iterator[McpServer]:
    """The example's module-level ``app``, configured through its environment as documented."""
    port = free_port()
    env = {
        "GENAUTH_APP_HOST": auth_server.url,
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
        "MCP_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp",
    }
    module = load_example(env)
    with serve_in_thread(module.app, port=port):
        yield McpServer(env["MCP_RESOURCE_URL"], auth_server)


@pytest.fixture(scope="module")
def sdk_way(auth_server: RunningAuthServer) -> Iterator[McpServer]:
    """The same tools behind the SDK's own bearer check, with ``GenAuthTokenVerifier``."""
    module = load_example({"GENAUTH_APP_HOST": auth_server.url, **_env_credentials()})
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)
    with serving(
        lambda resource: module.create_sdk_app(
            introspector, resource=resource, authorization_server=f"{auth_server.url}/oidc"
        )
    ) as url:
        yield McpServer(url, auth_server)


def _env_credentials() -> dict[str, str]:
    return {"GENAUTH_APP_ID": "post-client", "GENAUTH_APP_SECRET": "post-secret"}


@dataclass
class Seen:
    """Every HTTP answer the SDK client got, as (method, url, status, WWW-Authenticate)."""

    answers: list[tuple[str, str, int, str | None]] = field(default_factory=list)

    async def hook(self, response: httpx2.Response) -> None:
        request = response.request
        challenge = response.headers.get("www-authenticate")
        self.answers.append((request.method, str(request.url), response.status_code, challenge))


async def use_tools(url: str, token: str | None, seen: Seen | None = None) -> dict[str, Any]:
    """Initialize, list the tools and call both, as an MCP host would; what it got back."""
    seen = seen or Seen()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, event_hooks={"response": [seen.hook]}) as client,
        streamable_http_client(url, http_client=client) as (read, write),
        ClientSession(read, write) as session,
    ):
        initialized = await session.initialize()
        tools = await session.list_tools()
        whoami = await session.call_tool("whoami", {})
        orders = await session.call_tool("list_orders", {})
        return {
            "server": initialized.server_info.name,
            "tools": sorted(tool.name for tool in tools.tools),
            "whoami": whoami.structured_content,
            "orders": orders.structured_content,
        }


async def refused(url: str, token: str | None) -> tuple[str, str, int, str | None]:
    """The answer that stopped the SDK client from initializing."""
    seen = Seen()
    with pytest.raises(Exception):  # the SDK's error for a refused POST
        await use_tools(url, token, seen)
    posts = [answer for answer in seen.answers if answer[0] == "POST"]
    assert len(posts) == 1, seen.answers  # it never got past initialize
    return posts[0]


# ---------------------------------------------------------------- behind GenAuthGuard


async def test_the_sdk_client_initializes_lists_and_calls_tools(example: McpServer) -> None:
    result = await use_tools(example.url, example.token())
    assert result == {
        "server": "orders",
        "tools": ["list_orders", "whoami"],
        "whoami": {"subject": "alice", "client_id": "post-client", "scopes": ["orders:read"]},
        "orders": {"result": [{"id": 1, "item": "keyboard", "owner": "alice"}]},
    }


async def test_without_a_token_the_client_sees_401_with_resource_metadata(
    example: McpServer,
) -> None:
    method, url, status, challenge = await refused(example.url, None)
    assert (method, url, status) == ("POST", example.url, 401)
    details = f'scope="orders:read", resource_metadata="{example.metadata_url}"'
    # Both schemes offered (dpop="allowed"), each with the scope and the metadata URL.
    assert challenge == (
        f'Bearer realm="api", {details}, DPoP algs="ES256 RS256 PS256 EdDSA", {details}'
    )


async def test_the_sdk_oauth_client_finds_the_authorization_server_from_the_challenge(
    example: McpServer,
) -> None:
    """The MCP authorization flow: 401 -> RFC 9728 document -> authorization server -> login."""
    seen = Seen()
    redirects: list[str] = []

    class Storage:
        async def get_tokens(self) -> OAuthToken | None:
            return None

        async def set_tokens(self, tokens: OAuthToken) -> None:
            raise AssertionError("no token was issued")

        async def get_client_info(self) -> OAuthClientInformationFull:
            return OAuthClientInformationFull(
                client_id="public-client", redirect_uris=["http://127.0.0.1:1/callback"]
            )

        async def set_client_info(self, info: OAuthClientInformationFull) -> None:
            pass

    class LoginStarted(Exception):
        pass

    async def redirect(url: str) -> None:
        redirects.append(url)
        raise LoginStarted  # a person would log in now; the discovery is what is tested

    async def callback() -> Any:
        raise LoginStarted

    provider = OAuthClientProvider(
        example.url,
        OAuthClientMetadata(redirect_uris=["http://127.0.0.1:1/callback"]),
        Storage(),
        redirect,
        callback,
    )
    with pytest.raises(Exception):  # LoginStarted, in the SDK's task group
        async with (
            httpx2.AsyncClient(auth=provider, event_hooks={"response": [seen.hook]}) as client,
            streamable_http_client(example.url, http_client=client) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
    first, document = seen.answers[0], seen.answers[1]
    assert first[:3] == ("POST", example.url, 401)
    assert f'resource_metadata="{example.metadata_url}"' in (first[3] or "")
    assert document[:3] == ("GET", example.metadata_url, 200)
    issuer = f"{example.auth.url}/oidc"
    assert any(
        url.startswith(example.auth.url) and "/.well-known/" in url and status == 200
        for _, url, status, _ in seen.answers[2:]
    ), seen.answers  # it read the metadata of the authorization server the document names
    [login] = redirects
    query = parse_qs(urlsplit(login).query)
    assert query["resource"] == [example.url]  # RFC 8707: a token for this server
    assert "orders:read" in query["scope"][0].split()  # what the challenge asked for
    assert query["client_id"] == ["public-client"]
    async with httpx.AsyncClient() as client:
        document_body = (await client.get(example.metadata_url)).json()
    assert document_body["authorization_servers"] == [issuer]


async def test_a_token_for_another_audience_is_refused(example: McpServer) -> None:
    token = example.token(aud="http://127.0.0.1:1/other-mcp")
    _, _, status, challenge = await refused(example.url, token)
    assert status == 401
    assert challenge is not None
    assert 'error="invalid_token"' in challenge
    assert f"its aud must name {example.url}" in challenge
    assert f'resource_metadata="{example.metadata_url}"' in challenge


async def test_a_token_lacking_the_scope_is_refused(example: McpServer) -> None:
    _, _, status, challenge = await refused(example.url, example.token("profile"))
    assert status == 403
    assert challenge == (
        'Bearer realm="api", error="insufficient_scope", error_description="The access token '
        'lacks the scope this resource needs: orders:read.", scope="orders:read", '
        f'resource_metadata="{example.metadata_url}", DPoP algs="ES256 RS256 PS256 EdDSA"'
    )


def _rpc(method: str, id_: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}}


async def test_a_session_stays_with_the_identity_that_opened_it(example: McpServer) -> None:
    """MCPAuthBridge: another valid token cannot ride on a session id it learned."""
    alice, bob = example.token(sub="alice"), example.token(sub="bob")
    init = _rpc(
        "initialize",
        1,
        {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    )
    async with httpx.AsyncClient(timeout=10) as client:
        opened = await client.post(
            example.url, json=init, headers={"Authorization": f"Bearer {alice}", "Accept": ACCEPT}
        )
        assert opened.status_code == 200
        session = opened.headers["mcp-session-id"]

        async def list_tools(token: str) -> httpx.Response:
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": ACCEPT,
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-06-18",
            }
            return await client.post(example.url, json=_rpc("tools/list", 2), headers=headers)

        assert (await list_tools(bob)).status_code == 404  # as if the session did not exist
        assert (await list_tools(alice)).status_code == 200


# ---------------------------------------------------------------- the SDK's way


async def test_the_sdk_way_with_the_verifier_works(sdk_way: McpServer) -> None:
    result = await use_tools(sdk_way.url, sdk_way.token())
    assert result["tools"] == ["list_orders", "whoami"]
    assert result["whoami"] == {
        "subject": "alice",
        "client_id": "post-client",
        "scopes": ["orders:read"],
    }
    assert result["orders"] == {"result": [{"id": 1, "item": "keyboard", "owner": "alice"}]}


async def test_the_sdk_way_refuses_what_the_guard_refuses(sdk_way: McpServer) -> None:
    no_token = await refused(sdk_way.url, None)
    assert no_token[2] == 401
    assert f'resource_metadata="{sdk_way.metadata_url}"' in (no_token[3] or "")
    other_audience = await refused(sdk_way.url, sdk_way.token(aud="http://127.0.0.1:1/other"))
    assert other_audience[2] == 401
    lacking = await refused(sdk_way.url, sdk_way.token("profile"))
    assert lacking[2] == 403
    assert 'error="insufficient_scope"' in (lacking[3] or "")
    revoked = sdk_way.token()
    sdk_way.auth.server.revoke(revoked)
    assert (await refused(sdk_way.url, revoked))[2] == 401


async def test_the_sdk_way_answers_500_never_a_pass_when_the_server_is_down(
    auth_server: RunningAuthServer,
) -> None:
    module = load_example({"GENAUTH_APP_HOST": auth_server.url, **_env_credentials()})
    introspector = Introspector(closed_port_url(), retries=0, **CREDENTIALS)
    with serving(
        lambda resource: module.create_sdk_app(
            introspector, resource=resource, authorization_server=f"{auth_server.url}/oidc"
        )
    ) as url:
        token = auth_server.server.mint(sub="alice", scopes="orders:read", audience=url)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(
                url,
                json=_rpc("initialize", 1),
                headers={"Authorization": f"Bearer {token}", "Accept": ACCEPT},
            )
        assert response.status_code == 500


# ---------------------------------------------------------------- GenAuthTokenVerifier


async def test_the_verifier_maps_an_answer_to_the_sdks_access_token(
    auth_server: RunningAuthServer,
) -> None:
    resource = "https://mcp.example.com/mcp"
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)
    verifier = GenAuthTokenVerifier(introspector, resource=resource)
    token = auth_server.server.mint(
        sub="alice",
        scopes="orders:write orders:read",
        audience=["https://x.example", resource + "/"],
    )
    answer = auth_server.server.answer(token)
    access = await verifier.verify_token(token)
    assert access is not None
    assert access.token == token
    assert access.subject == "alice"
    assert access.client_id == "post-client"
    assert access.scopes == ["orders:read", "orders:write"]
    assert access.expires_at == answer["exp"]
    assert access.resource == resource + "/"  # the aud entry that names the resource
    assert access.claims == answer
    # Without resource: the only aud entry, else none.
    plain = GenAuthTokenVerifier(introspector)
    single = auth_server.server.mint(sub="bob", audience=resource)
    assert (await plain.verify_token(single)).resource == resource  # type: ignore[union-attr]
    assert (await plain.verify_token(token)).resource is None  # type: ignore[union-attr]
    await introspector.aclose()


async def test_the_verifier_refuses_inactive_foreign_and_malformed_tokens(
    auth_server: RunningAuthServer,
) -> None:
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)
    verifier = GenAuthTokenVerifier(introspector, resource="https://mcp.example.com/mcp")
    revoked = auth_server.server.mint(sub="alice", audience="https://mcp.example.com/mcp")
    auth_server.server.revoke(revoked)
    foreign = auth_server.server.mint(sub="alice", audience="https://other.example.com/mcp")
    calls = auth_server.calls
    assert await verifier.verify_token(revoked) is None
    assert await verifier.verify_token(foreign) is None
    assert await verifier.verify_token("unknown") is None
    assert await verifier.verify_token("two words") is None  # not a token: never sent
    assert await verifier.verify_token("") is None
    assert auth_server.calls == calls + 3
    await introspector.aclose()


async def test_the_verifier_gives_an_empty_client_id_when_the_answer_has_none() -> None:
    class Verifier:  # any verifier of the introspector's shape
        async def introspect(self, token: str) -> TokenInfo:
            return TokenInfo(active=True, sub="svc", scopes=frozenset({"a"}))

    access = await GenAuthTokenVerifier(Verifier()).verify_token("t")
    assert access is not None
    assert (access.client_id, access.subject, access.resource, access.expires_at) == (
        "",
        "svc",
        None,
        None,
    )


async def test_the_verifier_raises_when_the_server_cannot_answer() -> None:
    introspector = Introspector(closed_port_url(), retries=0, **CREDENTIALS)
    with pytest.raises(IntrospectionError):
        await GenAuthTokenVerifier(introspector).verify_token("some-token")
    await introspector.aclose()


def test_the_verifier_refuses_a_wrong_introspector_or_resource() -> None:
    sync = SyncIntrospector("https://example.genauth.ai/oidc/token/introspection", **CREDENTIALS)
    with pytest.raises(ConfigurationError, match="needs an async introspector"):
        GenAuthTokenVerifier(sync)  # type: ignore[arg-type]
    introspector = Introspector(
        "https://example.genauth.ai/oidc/token/introspection", **CREDENTIALS
    )
    with pytest.raises(ConfigurationError, match="no query"):
        GenAuthTokenVerifier(introspector, resource="https://mcp.example.com/mcp?x=1")
    with pytest.raises(ConfigurationError, match="https://"):
        GenAuthTokenVerifier(introspector, resource="http://mcp.example.com/mcp")


def test_without_the_extra_both_classes_say_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "mcp" or name.startswith("mcp."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "mcp", None)  # what an install without the extra has
    introspector = Introspector(
        "https://example.genauth.ai/oidc/token/introspection", **CREDENTIALS
    )
    with pytest.raises(ConfigurationError, match=r"genauth-guard\[mcp\]"):
        GenAuthTokenVerifier(introspector)
    with pytest.raises(ConfigurationError, match=r"genauth-guard\[mcp\]"):
        MCPAuthBridge(lambda scope, receive, send: None)  # type: ignore[arg-type,return-value]


# ---------------------------------------------------------------- the dev server


async def test_the_dev_server_mints_a_token_for_a_resource(auth_server: RunningAuthServer) -> None:
    form = {**CREDENTIALS, "sub": "alice", "scope": "orders:read"}
    async with httpx.AsyncClient(timeout=10) as client:
        minted = await client.post(
            f"{auth_server.url}/dev/tokens",
            data={**form, "resource": "https://mcp.example.com/mcp"},
        )
        assert minted.status_code == 200
        answer = auth_server.server.answer(minted.json()["access_token"])
        assert answer["aud"] == "https://mcp.example.com/mcp"
        for bad in ("mcp.example.com/mcp", "https://mcp.example.com/mcp#x"):
            refused = await client.post(
                f"{auth_server.url}/dev/tokens", data={**form, "resource": bad}
            )
            assert refused.status_code == 400
            assert refused.json()["error"] == "invalid_target"
