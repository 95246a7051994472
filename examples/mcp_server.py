"""An MCP server (the official Python SDK) protected by GenAuthGuard.

The guard publishes the server's RFC 9728 metadata at
``/.well-known/oauth-protected-resource/mcp``, answers every refusal with a
challenge that points to it, and lets in only tokens issued for this server
(RFC 8707 ``aud``) with the ``orders:read`` scope. Run it against the
embedded dev authorization server (needs ``pip install 'genauth-guard[mcp,dev-server]'``):

    genauth-guard dev-server     # prints GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET
    export GENAUTH_APP_HOST=http://127.0.0.1:9000 GENAUTH_APP_ID=dev-client GENAUTH_APP_SECRET=...
    uvicorn examples.mcp_server:app --port 8000

    # a token for this server: resource= becomes its aud
    curl -s -d client_id=dev-client -d client_secret=... -d sub=alice \\
         -d scope=orders:read -d resource=http://127.0.0.1:8000/mcp \\
         http://127.0.0.1:9000/dev/tokens

then connect an MCP client to ``http://127.0.0.1:8000/mcp`` with
``Authorization: Bearer <access_token>`` (docs/mcp.md shows the SDK's
client). ``MCP_RESOURCE_URL`` sets the public URL (default
``http://127.0.0.1:8000/mcp``); ``MCP_AUTHORIZATION_SERVER`` the issuer
clients are sent to (default ``$GENAUTH_APP_HOST/oidc``, GenAuth's).

``create_app`` builds it in code (the tests do); ``create_sdk_app`` wires
the same tools the SDK's own way, with ``GenAuthTokenVerifier``.
"""

from __future__ import annotations

import os
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.types import ASGIApp

from genauth_guard import GenAuthGuard, Introspector
from genauth_guard.mcp import GenAuthTokenVerifier, MCPAuthBridge

SCOPE = "orders:read"
ORDERS = [
    {"id": 1, "item": "keyboard", "owner": "alice"},
    {"id": 2, "item": "monitor", "owner": "bob"},
]


def create_server(**auth: Any) -> MCPServer:
    """The MCP server and its tools; ``auth`` are ``MCPServer``'s auth options, if any."""
    server = MCPServer("orders", instructions="Read the orders of the signed-in user.", **auth)

    @server.tool()
    def list_orders() -> list[dict[str, Any]]:
        """The orders of the user the access token speaks for."""
        token = get_access_token()
        subject = token.subject if token is not None else None
        return [order for order in ORDERS if order["owner"] == subject]

    @server.tool()
    def whoami() -> dict[str, Any]:
        """Who is calling: the token's subject, client and scopes."""
        token = get_access_token()
        if token is None:  # cannot happen behind the guard: it lets no request in without one
            raise RuntimeError("no access token")
        return {"subject": token.subject, "client_id": token.client_id, "scopes": token.scopes}

    return server


def create_app(
    introspector: Introspector, *, resource: str, authorization_server: str
) -> ASGIApp:
    """The MCP server behind GenAuthGuard, at ``{resource}`` (its path is ``/mcp``)."""
    mcp_app = create_server().streamable_http_app()  # its lifespan runs the session manager
    return GenAuthGuard(
        MCPAuthBridge(mcp_app),  # tools see the token (get_access_token), sessions their owner
        introspector=introspector,
        protected_resource={
            "resource": resource,
            "authorization_servers": [authorization_server],
            "scopes_supported": [SCOPE],
            "resource_name": "Orders (MCP)",
        },
        rules=[("*", "/mcp", SCOPE)],  # every MCP request needs orders:read
    )


def create_sdk_app(
    introspector: Introspector, *, resource: str, authorization_server: str
) -> ASGIApp:
    """The same server wired the SDK's way: its own bearer check, with GenAuthTokenVerifier."""
    server = create_server(
        token_verifier=GenAuthTokenVerifier(introspector, resource=resource),
        auth=AuthSettings(
            issuer_url=authorization_server,
            resource_server_url=resource,
            required_scopes=[SCOPE],
            validate_token_resource=True,
        ),
    )
    return server.streamable_http_app()


def _settings() -> tuple[str, str]:
    resource = os.environ.get("MCP_RESOURCE_URL", "http://127.0.0.1:8000/mcp")
    issuer = os.environ.get("MCP_AUTHORIZATION_SERVER")
    if not issuer:
        host = os.environ.get("GENAUTH_APP_HOST", "").rstrip("/")
        issuer = f"{host}/{os.environ.get('GENAUTH_PROTOCOL') or 'oidc'}"
    return resource, issuer


# GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET (and the other GENAUTH_* settings);
# a missing or wrong one stops the app here, with a message naming it.
_RESOURCE, _ISSUER = _settings()
app = create_app(Introspector.from_env(), resource=_RESOURCE, authorization_server=_ISSUER)
