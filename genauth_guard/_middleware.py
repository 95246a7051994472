"""``GenAuthGuard``: the ASGI middleware.

Thin on purpose: the decisions are ``GuardPolicy``'s, the protocol is the
introspector's. This module only reads the ASGI scope and writes the answer.
"""

from __future__ import annotations

import inspect
from typing import Unpack

from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH
from ._challenge import Rejection
from ._introspector import Introspector
from ._logging import logger
from ._policy import GuardOptions, GuardPolicy
from ._scopes import REALM_KEY, SCOPE_KEY
from ._token_info import TokenInfo
from .errors import ConfigurationError, IntrospectionError

WEBSOCKET_POLICY_VIOLATION = 1008


def request_path(scope: Scope) -> str:
    """The path the application routes on: ``scope["path"]`` below the mount point.

    Starlette's ``Mount`` (0.33 and later) and ``uvicorn --root-path`` keep
    ``root_path`` inside ``path``; routes, and ``exclude_paths``, are written
    for what follows it, as ``PATH_INFO`` is below ``SCRIPT_NAME`` on WSGI.
    Stripped only at a segment boundary, the way Starlette's router does.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if len(path) == len(root_path):
        return "/"
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


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
    ``required_scopes``, ``realm``, ``allow_query_token``, ``retry_after``.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        introspector: Introspector,
        **options: Unpack[GuardOptions],
    ) -> None:
        if not inspect.iscoroutinefunction(getattr(introspector, "introspect", None)):
            raise ConfigurationError(
                "GenAuthGuard needs an async introspector (an object whose introspect(token) "
                f"is a coroutine function), got {type(introspector).__name__}; build "
                "Introspector(...) with the same options (SyncIntrospector is for WSGI apps "
                "and GenAuthGuardWSGI)."
            )
        self.app = app
        self.introspector = introspector
        max_length = getattr(introspector, "max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
        self.policy = GuardPolicy(max_token_length=max_length, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        # Even on excluded paths: a route's own 401/403 names this guard's realm.
        scope[REALM_KEY] = self.policy.realm
        if self.policy.is_excluded(request_path(scope)):
            await self.app(scope, receive, send)
            return
        outcome = await self._authenticate(scope)
        if isinstance(outcome, Rejection):
            await self._reject(outcome, scope, send)
            return
        scope[SCOPE_KEY] = outcome
        scope["user"] = TokenUser(outcome)
        scope["auth"] = AuthCredentials(sorted(outcome.scopes))
        await self.app(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> TokenInfo | Rejection:
        authorization = [
            value.decode("latin-1") for name, value in scope["headers"] if name == b"authorization"
        ]
        token = self.policy.token(authorization, scope.get("query_string", b"").decode("latin-1"))
        if isinstance(token, Rejection):
            return token
        try:
            info = await self.introspector.introspect(token)
        except IntrospectionError as error:
            return self.policy.failure(error)
        return self.policy.check(info) or info

    async def _reject(self, rejection: Rejection, scope: Scope, send: Send) -> None:
        logger.debug("rejected %s %s: %s", scope["type"], scope["path"], rejection.status)
        if scope["type"] == "websocket":
            # Closing before accept makes the server refuse the handshake (HTTP 403).
            await send(
                {
                    "type": "websocket.close",
                    "code": WEBSOCKET_POLICY_VIOLATION,
                    "reason": rejection.error or "unauthorized",
                }
            )
            return
        body = rejection.body()
        headers = [
            (k.lower().encode(), v.encode()) for k, v in rejection.headers(self.policy.realm)
        ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
