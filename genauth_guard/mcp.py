"""MCP servers built with the official Python SDK (``mcp``), checked by introspection.

Two ways to put GenAuth (or any RFC 7662 server) in front of an MCP server:

- ``GenAuthGuard(app, introspector=..., protected_resource={...})`` around
  the SDK's Starlette app (``server.streamable_http_app()``): the guard
  serves the RFC 9728 document, answers 401/403 with ``resource_metadata``
  and checks the audience. Put ``MCPAuthBridge`` between the two so the SDK
  sees the guard's answer: ``get_access_token()`` works in tools, and each
  MCP session stays with the identity that opened it.
- The SDK's own way: ``MCPServer(..., token_verifier=GenAuthTokenVerifier(
  introspector, resource=URL), auth=AuthSettings(...))``.
  ``GenAuthTokenVerifier`` is the SDK's ``TokenVerifier`` protocol, with the
  introspector's cache and single flight. When the authorization server
  cannot answer it raises, and the SDK answers 500: never a pass, but no
  ``Retry-After`` either; the guard answers 503 with ``Retry-After``.

Needs the extra: ``pip install 'genauth-guard[mcp]'``. Importing this module
works without it; building either class without it is a
``ConfigurationError`` that says so.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

from ._bearer import BEARER_AND_DPOP, extract_credentials
from ._request_view import SCOPE_KEY, AsgiRequest
from ._resource_metadata import audience_entry, check_url
from ._token_info import TokenInfo
from .errors import ConfigurationError, InvalidRequest

if TYPE_CHECKING:
    from mcp.server.auth.provider import AccessToken
    from starlette.types import ASGIApp, Receive, Scope, Send

    from ._verifier import TokenVerifier

__all__ = ["GenAuthTokenVerifier", "MCPAuthBridge", "access_token"]

EXTRA = "pip install 'genauth-guard[mcp]'"


def _require_sdk(what: str) -> None:
    try:
        import mcp.server.auth.provider  # noqa: F401
    except ImportError:
        raise ConfigurationError(
            f"{what} needs the MCP Python SDK, which is not installed: {EXTRA}."
        ) from None


def access_token(info: TokenInfo, token: str, resource: str | None = None) -> AccessToken | None:
    """The SDK's ``AccessToken`` for an introspection answer, or ``None`` if it must not pass.

    ``None`` for an inactive answer, and, with ``resource``, for a token
    whose ``aud`` does not name it (RFC 8707). ``sub`` becomes ``subject``,
    ``exp`` ``expires_at``, a missing ``client_id`` ``""``; ``resource`` is
    the ``aud`` entry naming the resource (without ``resource``: the only
    ``aud`` entry, if there is exactly one); ``claims`` is the whole answer.
    """
    from mcp.server.auth.provider import AccessToken

    if not info.active:
        return None
    if resource is not None:
        issued_for = audience_entry(info.aud, resource)
        if issued_for is None:
            return None
    else:
        issued_for = info.aud[0] if len(info.aud) == 1 else None
    return AccessToken(
        token=token,
        client_id=info.client_id or "",
        scopes=sorted(info.scopes),
        expires_at=info.exp,
        resource=issued_for,
        subject=info.sub,
        claims=dict(info.claims),
    )


class GenAuthTokenVerifier:
    """The MCP SDK's ``TokenVerifier``: ``await verify_token(token)`` -> ``AccessToken | None``.

    ``introspector``: an ``Introspector`` (or any async verifier of its
    shape), shared with the rest of the app so its cache serves both.
    ``resource``: this server's URL (``AuthSettings.resource_server_url``);
    when given, a token whose ``aud`` does not name it is refused (``None``),
    whatever ``AuthSettings.validate_token_resource`` says.

    A bad token is ``None`` (the SDK answers 401); an unavailable
    authorization server raises ``IntrospectionError`` (the SDK answers 500).
    So is a sender-constrained token (``cnf.jkt``, ``cnf["x5t#S256"]``): the
    SDK hands over a bearer token alone, with no DPoP proof or client
    certificate to check, and a bound token must never pass as a bearer
    token (RFC 9449 7.2, RFC 8705 3). Put ``GenAuthGuard`` in front to take them.
    """

    def __init__(self, introspector: TokenVerifier, *, resource: str | None = None) -> None:
        _require_sdk("GenAuthTokenVerifier")
        if not inspect.iscoroutinefunction(getattr(introspector, "introspect", None)):
            raise ConfigurationError(
                "GenAuthTokenVerifier needs an async introspector (Introspector(...), or an "
                f"object whose introspect(token) is a coroutine function), got "
                f"{type(introspector).__name__}."
            )
        self.introspector = introspector
        self.resource = None if resource is None else check_url(resource, "resource")

    def __repr__(self) -> str:
        return f"GenAuthTokenVerifier({self.introspector!r}, resource={self.resource!r})"

    async def verify_token(self, token: str) -> AccessToken | None:
        if not isinstance(token, str) or not token:
            return None
        try:
            info = await self.introspector.introspect(token)
        except InvalidRequest:  # not even shaped like a token: no call was made
            return None
        cnf = info.cnf
        if cnf is not None and ("jkt" in cnf or "x5t#S256" in cnf):
            return None  # bound to a key or certificate nobody here can check
        return access_token(info, token, self.resource)


class MCPAuthBridge:
    """Shows the MCP SDK the token ``GenAuthGuard`` accepted: place it inside the guard.

    ``GenAuthGuard(MCPAuthBridge(server.streamable_http_app()), ...)``. For
    a request the guard let in, the SDK's app sees its own
    ``AuthenticatedUser`` in ``scope["user"]`` (built like
    ``GenAuthTokenVerifier`` builds an ``AccessToken``), so
    ``mcp.server.auth.middleware.auth_context.get_access_token()`` works in
    tools, and the SDK binds each session to the identity (client, issuer,
    subject) that opened it: another token cannot use that session id.
    Requests the guard did not check pass unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        _require_sdk("MCPAuthBridge")
        from mcp.server.auth.middleware.auth_context import AuthContextMiddleware

        self.app = app
        self._with_context = AuthContextMiddleware(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = scope.get(SCOPE_KEY) if scope["type"] in ("http", "websocket") else None
        if not isinstance(info, TokenInfo):
            await self.app(scope, receive, send)
            return
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser

        request = AsgiRequest(scope)
        try:  # the guard already took it from here: this cannot fail, but never guess
            found = extract_credentials(
                request.authorization(),
                request.query_string(),
                schemes=BEARER_AND_DPOP,  # the guard checked a DPoP token's proof and binding
                allow_query_token=True,
                max_length=1 << 30,
            )
        except InvalidRequest:
            found = None
        token = None if found is None else found[1]
        issued = access_token(info, token or "")
        if token is None or issued is None:
            await self.app(scope, receive, send)
            return
        scope["user"] = AuthenticatedUser(issued)
        await self._with_context(scope, receive, send)
