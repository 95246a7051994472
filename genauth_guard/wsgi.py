"""``GenAuthGuardWSGI``: the WSGI middleware (Flask, Django, any WSGI app).

The twin of the ASGI ``GenAuthGuard`` with nothing of its own to decide:
``GuardPolicy`` decides, ``Rejection`` writes the answer, ``SyncIntrospector``
asks the authorization server. This module only reads the WSGI environ and
calls ``start_response``, so both middlewares answer every request alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH, plain_bearer_wsgi
from ._challenge import Rejection
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy, verifier_checks_audience
from ._request_view import (
    ENVIRON_KEY,
    REALM_KEY,
    RESOURCE_METADATA_KEY,
    STRATEGY_KEY,
    WsgiRequest,
    wsgi_authorization,
    wsgi_path,
)
from ._responses import answer_wsgi, answer_wsgi_document
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
    user) and ``environ["AUTH_TYPE"] = "Bearer"``; ``require_scopes`` finds
    the guard's realm in ``environ["genauth_guard.realm"]`` (and its scope
    strategy and metadata URL beside it). The options and the answers are
    those of ``GenAuthGuard``, the RFC 9728 document included.

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
        max_length = getattr(introspector, "max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
        self.policy = GuardPolicy(
            max_token_length=max_length,
            check_audience=not verifier_checks_audience(introspector),
            **options,
        )
        self._cached = cached_path(introspector)

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
                info = entry.info
                rejection = policy.check(info, request)
                if rejection is None:
                    return self._accept(info, environ, start_response)
                return self._refuse(rejection, request, start_response)
        outcome = self._authenticate(request)
        if isinstance(outcome, Rejection):
            return self._refuse(outcome, request, start_response)
        return self._accept(outcome, environ, start_response)

    def _accept(
        self, info: TokenInfo, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        environ[ENVIRON_KEY] = info
        environ["AUTH_TYPE"] = "Bearer"
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

    def _authenticate(self, request: WsgiRequest) -> TokenInfo | Rejection:
        token = self.policy.token_of(request)
        if isinstance(token, Rejection):
            return token
        try:
            info = self.introspector.introspect(token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        return self.policy.check(info, request) or info
