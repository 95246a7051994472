"""``GenAuthGuard``: the ASGI middleware.

Thin on purpose: the decisions are ``GuardPolicy``'s, the protocol is the
introspector's. This module only reads the ASGI scope and writes the answer.
"""

from __future__ import annotations

from typing import Unpack

from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

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
from ._token_info import TokenInfo
from ._verifier import TokenVerifier, check_async_verifier
from .errors import IntrospectionError

request_path = asgi_path  # the path the guard matches exclude_paths against


class TokenUser(BaseUser):
    """The Starlette user of an accepted request: who the token speaks for.

    ``identity`` is the token's ``sub``, else its ``username``, else ``""``:
    a client acting for itself has no user identity (``token_info.client_id``
    names the client).
    """

    __slots__ = ("token_info",)

    def __init__(self, token_info: TokenInfo) -> None:
        self.token_info = token_info

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token_info.username or self.identity

    @property
    def identity(self) -> str:
        return self.token_info.identity or ""

    def __repr__(self) -> str:
        return f"TokenUser(identity={self.identity!r})"


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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
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
        if scope["type"] == "http" and policy.resource is not None:
            document = policy.document(request)
            if document is not None:
                await send_asgi_document(document, send)
                return
        if policy.is_excluded(request.path):
            await self.app(scope, receive, send)
            return
        outcome = await self._authenticate(request)
        if isinstance(outcome, Rejection):
            logger.debug("rejected %s %s: %s", scope["type"], scope["path"], outcome.status)
            await send_asgi(outcome, self.policy.realm, scope["type"], send)
            return
        info, presented = outcome
        scope[SCOPE_KEY] = info
        scope[OFFER_KEY] = self.policy.offers[presented.scheme]
        scope["user"] = TokenUser(info)
        scope["auth"] = AuthCredentials(sorted(info.scopes))
        await self.app(scope, receive, send)

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
