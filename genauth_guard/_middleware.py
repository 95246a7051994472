"""``GenAuthGuard``: the ASGI middleware.

Thin on purpose: the decisions are ``GuardPolicy``'s, the protocol is the
introspector's. This module only reads the ASGI scope and writes the answer.
"""

from __future__ import annotations

from typing import Unpack

from starlette.types import ASGIApp, Receive, Scope, Send

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH, plain_bearer_asgi
from ._challenge import Rejection
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy, verifier_checks_audience
from ._request_view import (
    REALM_KEY,
    RESOURCE_METADATA_KEY,
    SCOPE_KEY,
    STRATEGY_KEY,
    AsgiRequest,
    asgi_path,
)
from ._responses import send_asgi, send_asgi_document
from ._starlette_user import TokenUser
from ._token_info import TokenInfo
from ._verifier import TokenVerifier, cached_path, check_async_verifier
from .errors import IntrospectionError

request_path = asgi_path  # the path the guard matches exclude_paths against


class GenAuthGuard:
    """Protects an ASGI app: only requests with an active bearer token get through.

    Accepted requests carry ``scope["user"]`` (``TokenUser``),
    ``scope["auth"]`` (``AuthCredentials`` with the token's scopes) and
    ``scope["token_info"]``. Lifespan and other scope types pass untouched.
    ``options`` are ``policy.GuardOptions``: ``exclude_paths``,
    ``required_scopes``, ``realm``, ``allow_query_token``, ``retry_after``,
    ``protected_resource`` (RFC 9728 metadata, served at its well-known
    paths; RFC 8707 audience check), ``scope_strategy`` and ``rules``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        introspector: TokenVerifier,
        **options: Unpack[GuardOptions],
    ) -> None:
        self.app = app
        self.introspector = check_async_verifier(introspector)
        max_length = getattr(introspector, "max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
        self.policy = GuardPolicy(
            max_token_length=max_length,
            check_audience=not verifier_checks_audience(introspector),
            **options,
        )
        self._cached = cached_path(introspector)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await self.app(scope, receive, send)
            return
        # Even on excluded paths: a route's own 401/403 answers like this guard.
        policy = self.policy
        scope[REALM_KEY] = policy.realm
        scope[STRATEGY_KEY] = policy.scope_strategy
        if policy.resource_metadata is None:
            scope.pop(RESOURCE_METADATA_KEY, None)
        else:
            scope[RESOURCE_METADATA_KEY] = policy.resource_metadata
        request = AsgiRequest(scope)
        if kind == "http" and policy.resource is not None:
            document = policy.document(request)
            if document is not None:
                await send_asgi_document(document, send)
                return
        if policy.excludes and policy.is_excluded(request.path):
            await self.app(scope, receive, send)
            return
        cached = self._cached
        if cached is not None:  # the cached path: one scan, a digest, a lookup, the checks
            raw = plain_bearer_asgi(scope["headers"], scope.get("query_string", b""))
            entry = None if raw is None else cached(raw)
            if entry is not None:
                user = entry.memo
                if user is None:  # the answer's first request: its user, made once
                    user = entry.memo = TokenUser(entry.info)
                rejection = policy.check(user.token_info, request)
                if rejection is None:
                    scope[SCOPE_KEY] = user.token_info
                    scope["user"] = user
                    scope["auth"] = user.credentials
                    await self.app(scope, receive, send)
                    return
                await self._refuse(rejection, scope, send)
                return
        outcome = await self._authenticate(request)
        if isinstance(outcome, Rejection):
            await self._refuse(outcome, scope, send)
            return
        user = TokenUser(outcome)
        scope[SCOPE_KEY] = outcome
        scope["user"] = user
        scope["auth"] = user.credentials
        await self.app(scope, receive, send)

    async def _refuse(self, rejection: Rejection, scope: Scope, send: Send) -> None:
        logger.debug("rejected %s %s: %s", scope["type"], scope["path"], rejection.status)
        await send_asgi(rejection, self.policy.realm, scope["type"], send)

    async def _authenticate(self, request: AsgiRequest) -> TokenInfo | Rejection:
        token = self.policy.token_of(request)
        if isinstance(token, Rejection):
            return token
        try:
            info = await self.introspector.introspect(token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        return self.policy.check(info, request) or info
