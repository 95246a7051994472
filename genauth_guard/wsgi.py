"""``GenAuthGuardWSGI``: the WSGI middleware (Flask, Django, any WSGI app).

The twin of the ASGI ``GenAuthGuard`` with nothing of its own to decide:
``GuardPolicy`` decides, ``Rejection`` writes the answer, ``SyncIntrospector``
asks the authorization server. This module only reads the WSGI environ and
calls ``start_response``, so both middlewares answer every request alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import TYPE_CHECKING, Unpack

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH, split_credentials
from ._challenge import Rejection
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy
from ._scopes import ENVIRON_KEY, REALM_KEY
from ._sync_introspector import SyncIntrospector
from ._token_info import TokenInfo
from ._wsgi_views import answer_wsgi
from .errors import ConfigurationError, IntrospectionError

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["ENVIRON_KEY", "GenAuthGuardWSGI", "authorization_values", "request_path"]


def authorization_values(environ: WSGIEnvironment) -> list[str]:
    """The request's ``Authorization`` credentials, one per header it sent.

    WSGI has room for one value per header, so servers fold repeated headers
    into one, joined by commas (werkzeug, gunicorn); ``split_credentials``
    splits them again, as it splits every value the ASGI guard sees, so a
    request with two headers is refused as such on both. (A server that
    keeps only the last header hides the first one from every WSGI app;
    nothing here can see it.)
    """
    value = environ.get("HTTP_AUTHORIZATION")
    if not isinstance(value, str):
        return []
    return split_credentials(value)


def request_path(environ: WSGIEnvironment) -> str:
    """The path the application routes on, decoded the way werkzeug and Django decode it.

    ``PATH_INFO`` (below ``SCRIPT_NAME``, where the app is mounted) holds the
    URL-decoded bytes as latin-1; routes, and ``exclude_paths``, are UTF-8.
    """
    path = environ.get("PATH_INFO") or "/"
    try:
        return str(path.encode("latin-1").decode("utf-8", "replace"))
    except UnicodeEncodeError:  # a server that already decoded it
        return str(path)


class GenAuthGuardWSGI:
    """Protects a WSGI app: only requests with an active bearer token get through.

    Accepted requests carry ``environ["genauth_guard.token_info"]`` (the
    ``TokenInfo``), ``environ["REMOTE_USER"]`` (the token's ``sub``, else its
    ``username``, like ``scope["user"]`` on the ASGI side; unset, even if the
    server had set it, for a client acting for itself: ``client_id`` is no
    user) and ``environ["AUTH_TYPE"] = "Bearer"``; ``require_scopes`` finds
    the guard's realm in ``environ["genauth_guard.realm"]``. The options and
    the answers are those of ``GenAuthGuard``.

    ``introspector`` is one ``SyncIntrospector`` per process, shared by all
    its threads: its cache and single flight only help if it is shared.
    """

    def __init__(
        self,
        app: WSGIApplication,
        *,
        introspector: SyncIntrospector,
        **options: Unpack[GuardOptions],
    ) -> None:
        introspect = getattr(introspector, "introspect", None)
        if not callable(introspect) or inspect.iscoroutinefunction(introspect):
            raise ConfigurationError(
                "GenAuthGuardWSGI needs a SyncIntrospector (an object whose introspect(token) "
                f"is a plain method), got {type(introspector).__name__}; build "
                "SyncIntrospector(...) with the same options (the async Introspector is for "
                "ASGI apps and GenAuthGuard)."
            )
        self.app = app
        self.introspector = introspector
        max_length = getattr(introspector, "max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
        self.policy = GuardPolicy(max_token_length=max_length, **options)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = request_path(environ)
        # Even on excluded paths: require_scopes answers in the same realm.
        environ[REALM_KEY] = self.policy.realm
        if self.policy.is_excluded(path):
            return self.app(environ, start_response)
        outcome = self._authenticate(environ)
        if isinstance(outcome, Rejection):
            logger.debug("rejected %s %s: %s", environ.get("REQUEST_METHOD"), path, outcome.status)
            return answer_wsgi(outcome, self.policy.realm, start_response)
        environ[ENVIRON_KEY] = outcome
        environ["AUTH_TYPE"] = "Bearer"
        identity = outcome.identity
        if identity:
            environ["REMOTE_USER"] = identity
        else:  # never leave a REMOTE_USER the server set for someone else
            environ.pop("REMOTE_USER", None)
        return self.app(environ, start_response)

    def _authenticate(self, environ: WSGIEnvironment) -> TokenInfo | Rejection:
        token = self.policy.token(authorization_values(environ), environ.get("QUERY_STRING", ""))
        if isinstance(token, Rejection):
            return token
        try:
            info = self.introspector.introspect(token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        return self.policy.check(info) or info
