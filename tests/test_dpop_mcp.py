"""DPoP and MCP servers: the guard's way takes proven tokens, the SDK's way never a bound one.

Behind ``GenAuthGuard`` (the example server, with ``MCPAuthBridge``), an
MCP client that sends its token as DPoP with a proof per request opens a
session and calls tools as itself. The SDK's own bearer check
(``GenAuthTokenVerifier``) sees a token and nothing else, so it refuses
every token bound to a key or a certificate: it cannot check either.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from genauth_guard import Introspector
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.mcp import GenAuthTokenVerifier

from .conftest import RunningAuthServer
from .dpop_support import DPoPClient
from .test_mcp import ACCEPT, CREDENTIALS, McpServer, _rpc, free_port, load_example

pytestmark = pytest.mark.anyio

INIT = {
    "protocolVersion": "2025-06-18",
    "capabilities": {},
    "clientInfo": {"name": "dpop-test", "version": "1"},
}


@pytest.fixture(scope="module")
def example(auth_server: RunningAuthServer) -> Iterator[McpServer]:
    port = free_port()
    env = {
        "GENAUTH_APP_HOST": auth_server.url,
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
        "MCP_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp",
    }
    with serve_in_thread(load_example(env).app, port=port):
        yield McpServer(env["MCP_RESOURCE_URL"], auth_server)


async def test_an_mcp_client_with_a_dpop_bound_token_calls_tools_as_itself(
    example: McpServer,
) -> None:
    client = DPoPClient("ES256")
    token = example.auth.server.mint("carol", "orders:read", audience=example.url, jkt=client.jkt)

    def headers(**extra: str) -> dict[str, str]:
        return {**client.headers("POST", example.url, token), "Accept": ACCEPT, **extra}

    async with httpx.AsyncClient(timeout=10) as http:
        opened = await http.post(example.url, json=_rpc("initialize", 1, INIT), headers=headers())
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"]}
        session["mcp-protocol-version"] = "2025-06-18"
        call = _rpc("tools/call", 2, {"name": "whoami", "arguments": {}})
        answered = await http.post(example.url, json=call, headers=headers(**session))
        assert answered.status_code == 200, answered.text
        assert '"subject":"carol"' in answered.text.replace(" ", "")
        as_bearer = {"Authorization": f"Bearer {token}", "Accept": ACCEPT, **session}
        stolen = await http.post(example.url, json=call, headers=as_bearer)
        assert stolen.status_code == 401
        assert stolen.json()["error"] == "invalid_token"


async def test_the_sdk_way_never_takes_a_bound_token(auth_server: RunningAuthServer) -> None:
    resource = "https://mcp.example.com/mcp"
    introspector = Introspector(auth_server.endpoint(), **CREDENTIALS)
    verifier = GenAuthTokenVerifier(introspector, resource=resource)
    mint: Any = auth_server.server.mint
    dpop_bound = mint("alice", audience=resource, jkt=DPoPClient().jkt)
    cert_bound = mint("alice", audience=resource, x5t_s256="c" * 43)
    plain = mint("alice", audience=resource)
    assert await verifier.verify_token(dpop_bound) is None
    assert await verifier.verify_token(cert_bound) is None
    accepted = await verifier.verify_token(plain)
    assert accepted is not None and accepted.subject == "alice"
    await introspector.aclose()
