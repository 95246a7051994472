"""``GenAuthGuard``: the ASGI middleware.

Thin on purpose: the decisions are ``GuardPolicy``'s, the protocol is the
introspector's. This module only reads the ASGI scope and writes the answer.
"""

from __future__ import annotations

from typing import Unpack

from starlette.types import ASGIApp, Receive, Scope, Send

from ._bearer import plain_bearer_asgi
from ._challenge import Rejection
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy, verifier_settings
from ._request_view import (
    OFFER_KEY,
    REALM_KEY,
    RESOURCE_METADATA_KEY,
    SCOPE_KEY,
    STRATEGY_KEY,
    AsgiRequest,
    asgi_path,
)
from ._responses import send_asgi, send_asgi_document
from ._sender import Presented
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
    paths; RFC 8707 audience check), ``scope_strategy`` and ``rules``; and
    for sender-constrained tokens ``dpop``, ``dpop_algs``, ``dpop_max_age``,
    ``public_url``, ``client_cert_header``.
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
        self.policy = GuardPolicy(**verifier_settings(introspector), **options)
        # The cached path serves plain Bearer requests; under dpop="required" a
        # Bearer request is refused, so every request takes the long way.
        self._cached = None if self.policy.sender.mode == "required" else cached_path(introspector)
        self._bearer_offer = self.policy.offers[self.policy.plain_bearer.scheme]

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
                # A hit proves the bytes a well-formed bearer token: presented as Bearer.
                presented = policy.plain_bearer
                rejection = policy.check(user.token_info, request, presented)
                if rejection is None:
                    scope[SCOPE_KEY] = user.token_info
                    scope[OFFER_KEY] = self._bearer_offer
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
        info, presented = outcome
        user = TokenUser(info)
        scope[SCOPE_KEY] = info
        scope[OFFER_KEY] = policy.offers[presented.scheme]
        scope["user"] = user
        scope["auth"] = user.credentials
        await self.app(scope, receive, send)

    async def _refuse(self, rejection: Rejection, scope: Scope, send: Send) -> None:
        logger.debug("rejected %s %s: %s", scope["type"], scope["path"], rejection.status)
        await send_asgi(rejection, self.policy.realm, scope["type"], send)

    async def _authenticate(self, request: AsgiRequest) -> tuple[TokenInfo, Presented] | Rejection:
        presented = self.policy.present(request)
        if isinstance(presented, Rejection):
            return presented
        try:
            info = await self.introspector.introspect(presented.token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        rejection = self.policy.check(info, request, presented)
        if rejection is None and presented.proof is not None:
            rejection = await self.policy.aremember_shared(presented)
        return rejection or (info, presented)
