"""``GenAuthGuardWSGI``: the WSGI middleware (Flask, Django, any WSGI app).

The twin of the ASGI ``GenAuthGuard`` with nothing of its own to decide:
``GuardPolicy`` decides, ``Rejection`` writes the answer, ``SyncIntrospector``
asks the authorization server. This module only reads the WSGI environ and
calls ``start_response``, so both middlewares answer every request alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from ._bearer import plain_bearer_wsgi
from ._challenge import Rejection
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy, verifier_settings
from ._request_view import (
    ENVIRON_KEY,
    OFFER_KEY,
    REALM_KEY,
    RESOURCE_METADATA_KEY,
    STRATEGY_KEY,
    WsgiRequest,
    wsgi_authorization,
    wsgi_path,
)
from ._responses import answer_wsgi, answer_wsgi_document
from ._sender import Presented
from ._token_info import TokenInfo
from ._verifier import SyncTokenVerifier, cached_path, check_sync_verifier
from .errors import IntrospectionError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "GenAuthGuardWSGI", "authorization_values", "request_path"]

authorization_values = wsgi_authorization
"""The request's ``Authorization`` credentials, one per header (folded headers split)."""
request_path = wsgi_path
"""The path the application routes on (``PATH_INFO``, below ``SCRIPT_NAME``), decoded."""


class GenAuthGuardWSGI:
    """Protects a WSGI app: only requests with an active bearer token get through.

    Accepted requests carry ``environ["genauth_guard.token_info"]`` (the
    ``TokenInfo``), ``environ["REMOTE_USER"]`` (the token's ``sub``, else its
    ``username``, like ``scope["user"]`` on the ASGI side; unset, even if the
    server had set it, for a client acting for itself: ``client_id`` is no
    user) and ``environ["AUTH_TYPE"]`` (``"Bearer"``, or ``"DPoP"``);
    ``require_scopes`` finds the guard's realm in ``environ["genauth_guard.realm"]``
    (and its scope strategy, metadata URL and challenges beside it). The
    options and the answers are those of ``GenAuthGuard``, the RFC 9728
    document included.

    ``introspector`` is one ``SyncIntrospector`` per process, shared by all
    its threads: its cache and single flight only help if it is shared.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        introspector: SyncTokenVerifier,
        **options: Unpack[GuardOptions],
    ) -> None:
        self.app = app
        self.introspector = check_sync_verifier(introspector)
        self.policy = GuardPolicy(**verifier_settings(introspector), **options)
        # The cached path serves plain Bearer requests; under dpop="required" a
        # Bearer request is refused, so every request takes the long way.
        self._cached = None if self.policy.sender.mode == "required" else cached_path(introspector)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = WsgiRequest(environ)
        policy = self.policy
        # Even on excluded paths: require_scopes answers like this guard.
        environ[REALM_KEY] = policy.realm
        environ[STRATEGY_KEY] = policy.scope_strategy
        if policy.resource_metadata is None:
            environ.pop(RESOURCE_METADATA_KEY, None)
        else:
            environ[RESOURCE_METADATA_KEY] = policy.resource_metadata
            document = policy.document(request)
            if document is not None:
                return answer_wsgi_document(document, start_response)
        if policy.excludes and policy.is_excluded(request.path):
            return self.app(environ, start_response)
        cached = self._cached
        if cached is not None:  # the cached path: one scan, a digest, a lookup, the checks
            raw = plain_bearer_wsgi(environ.get("HTTP_AUTHORIZATION"), environ.get("QUERY_STRING"))
            entry = None if raw is None else cached(raw)
            if entry is not None:
                # A hit proves the bytes a well-formed bearer token: presented as Bearer.
                presented = policy.plain_bearer
                rejection = policy.check(entry.info, request, presented)
                if rejection is not None:
                    return self._refuse(rejection, request, start_response)
                return self._accept(entry.info, presented, environ, start_response)
        outcome = self._authenticate(request)
        if isinstance(outcome, Rejection):
            return self._refuse(outcome, request, start_response)
        return self._accept(*outcome, environ, start_response)

    def _accept(
        self,
        info: TokenInfo,
        presented: Presented,
        environ: WSGIEnvironment,
        start_response: StartResponse,
    ) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = info
        environ[OFFER_KEY] = self.policy.offers[presented.scheme]
        environ["AUTH_TYPE"] = presented.scheme
        identity = info.identity
        if identity:
            environ["REMOTE_USER"] = identity
        else:  # never leave a REMOTE_USER the server set for someone else
            environ.pop("REMOTE_USER", None)
        return self.app(environ, start_response)

    def _refuse(
        self, rejection: Rejection, request: WsgiRequest, start_response: StartResponse
    ) -> Iterable[bytes]:
        logger.debug("rejected %s %s: %s", request.method, request.path, rejection.status)
        return answer_wsgi(rejection, self.policy.realm, start_response)

    def _authenticate(self, request: WsgiRequest) -> tuple[TokenInfo, Presented] | Rejection:
        presented = self.policy.present(request)
        if isinstance(presented, Rejection):
            return presented
        try:
            info = self.introspector.introspect(presented.token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        rejection = self.policy.check(info, request, presented)
        if rejection is None and presented.proof is not None:
            rejection = self.policy.remember_shared(presented)
        return rejection or (info, presented)
