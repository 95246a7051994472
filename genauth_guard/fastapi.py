"""FastAPI dependencies that show the guard in the OpenAPI document.

``GenAuthGuard`` does the checking, in front of the app. FastAPI cannot see
a middleware, so its ``/docs`` would show every route as open; the
dependency here declares the bearer security scheme (``/docs`` gets its
lock icons and "Authorize" button), checks scopes the RFC 6750 way, and
hands the route the ``TokenInfo``.

Import this module only in FastAPI apps: it imports FastAPI, which is not a
dependency of genauth-guard.

    from genauth_guard.fastapi import require_token

    @app.get("/orders")
    async def orders(info: TokenInfo = Depends(require_token("orders:read"))): ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ._challenge import missing_token, pointing_to
from ._responses import http_exception
from ._scopes import (
    get_token_info,
    guard_offer,
    guard_realm,
    guard_resource_metadata,
    require_scopes,
)
from ._token_info import TokenInfo

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="GenAuthBearer",
    bearerFormat="opaque access token",
    description="An OAuth 2.0 access token issued by GenAuth (or another RFC 7662 server), "
    "checked by introspection: send 'Authorization: Bearer <token>'.",
)
"""The OpenAPI ``http``/``bearer`` security scheme. ``auto_error=False``: the guard decides."""

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def require_token(*scopes: str, realm: str | None = None) -> Callable[..., TokenInfo]:
    """A dependency: the request's ``TokenInfo``, with every one of ``scopes`` granted.

    401 if the guard did not pass a token to this route (it is not behind
    ``GenAuthGuard``, or the path is excluded): never open by accident.
    403 ``insufficient_scope`` if a scope is missing. Use it as
    ``Depends(require_token("orders:read"))``, or without scopes just to
    document and read the token. Both answers name ``realm``, by default
    the realm of the guard that let the request in (``"api"`` without one),
    so a client sees one realm per API.
    """
    requirement = require_scopes(*scopes, realm=realm) if scopes else None

    def token_info(request: Request, credentials: Credentials) -> TokenInfo:
        answer_realm = realm or guard_realm(request)
        info = get_token_info(request)
        if info is None or not info.active:
            refusal = pointing_to(missing_token(), guard_resource_metadata(request))
            raise http_exception(refusal, answer_realm)
        rejection = requirement.rejection(info, request) if requirement is not None else None
        if rejection is not None:
            raise http_exception(guard_offer(request, rejection), answer_realm)
        return info

    return token_info


__all__ = ["bearer_scheme", "require_token"]
