"""Per-route scope checks and access to the current request's ``TokenInfo``.

``require_scopes`` answers 403 ``insufficient_scope`` (RFC 6750) itself, with
the same body and challenge as the middleware; it checks on every call, so a
cached answer never lets a token into a route whose scopes it lacks. A
WebSocket has no response to send: it is closed before accept with 1008
(policy violation), as the middleware closes one it refuses.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from ._challenge import Rejection
from ._policy import missing_scopes, scope_set
from ._token_info import INACTIVE, TokenInfo
from ._wsgi_views import Responder, find_wsgi_request

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

SCOPE_KEY = "token_info"
ENVIRON_KEY = "genauth_guard.token_info"
REALM_KEY = "genauth_guard.realm"
DEFAULT_REALM = "api"
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD
WEBSOCKET_POLICY_VIOLATION = 1008


def _lookup(request: Any, key: str, kind: type[T]) -> T | None:
    """``key`` from whatever holds the request's state: ASGI scope, WSGI environ, Django META."""
    for holder in (
        getattr(request, "scope", None),
        getattr(request, "environ", None),
        getattr(request, "META", None),
        request,
    ):
        if isinstance(holder, Mapping):
            value = holder.get(key)
            if isinstance(value, kind):
                return value
    return None


def get_token_info(request: Any) -> TokenInfo | None:
    """The ``TokenInfo`` of the current request, or ``None`` if the guard did not pass it.

    Takes a Starlette/FastAPI ``Request`` or ``WebSocket``, an ASGI scope, a
    WSGI environ, a werkzeug/Flask request or a Django ``HttpRequest``.
    """
    return _lookup(request, SCOPE_KEY, TokenInfo) or _lookup(request, ENVIRON_KEY, TokenInfo)


def guard_realm(request: Any) -> str:
    """The realm of the guard that let the request in, so every challenge names the same one."""
    return _lookup(request, REALM_KEY, str) or DEFAULT_REALM


def rejection_response(rejection: Rejection, realm: str = DEFAULT_REALM) -> Response:
    """A Starlette response for ``rejection``."""
    return Response(
        rejection.body(), status_code=rejection.status, headers=dict(rejection.headers(realm))
    )


class ScopeRequirement:
    """What ``require_scopes`` returns: a decorator and a FastAPI dependency.

    As a decorator it wraps Starlette endpoints (functions or methods, sync
    or async, taking the request). As a dependency (``Depends(...)``) FastAPI
    calls it with the request; it raises ``HTTPException(403)`` with the
    RFC 6750 challenge, and returns the ``TokenInfo``.
    """

    def __init__(self, scopes: frozenset[str], realm: str | None) -> None:
        self.scopes = scopes
        self.realm = realm
        # What FastAPI reads to know what to inject when used as a dependency.
        self.__signature__ = inspect.Signature(
            [inspect.Parameter("request", _POSITIONAL_OR_KEYWORD, annotation=Request)],
            return_annotation=TokenInfo,
        )

    def rejection(self, info: TokenInfo | None) -> Rejection | None:
        """Why ``info`` may not pass, or ``None``."""
        return missing_scopes(info or INACTIVE, self.scopes)

    def __call__(self, target: Any = None, *, request: Any = None) -> Any:
        if request is not None or isinstance(target, HTTPConnection):
            # FastAPI calls dependencies with keywords: Depends(...) passes request=.
            return self._dependency(request if request is not None else target)
        if callable(target):
            return self._decorate(target)
        raise TypeError("require_scopes(...) decorates an endpoint or is used as Depends(...)")

    def _dependency(self, request: HTTPConnection) -> TokenInfo:
        info = get_token_info(request) or INACTIVE
        rejection = self.rejection(info)
        if rejection is not None:
            raise HTTPException(
                rejection.status,
                rejection.description,
                headers=dict(rejection.headers(self.realm or guard_realm(request))),
            )
        return info

    def _decorate(self, endpoint: F) -> F:
        def denied(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """The framework's 403 response, or ``None`` when the endpoint may run."""
            request, respond = _find_connection(args, kwargs)
            rejection = self.rejection(get_token_info(request))
            if rejection is None:
                return None
            return respond(rejection, self.realm or guard_realm(request))

        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                response = denied(args, kwargs)
                if response is None:
                    return await endpoint(*args, **kwargs)
                if isinstance(response, _WebSocketRefusal):
                    await response.close()
                    return None
                return response

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            response = denied(args, kwargs)
            if response is None:
                return endpoint(*args, **kwargs)
            if isinstance(response, _WebSocketRefusal):
                return response.close()  # a coroutine: what runs a WebSocket endpoint awaits
            return response

        return sync_wrapper  # type: ignore[return-value]


class _WebSocketRefusal:
    """What a refused WebSocket gets instead of a response: a close before accept.

    The ASGI server answers the handshake with 403; the endpoint never runs.
    """

    def __init__(self, websocket: WebSocket, rejection: Rejection) -> None:
        self.websocket = websocket
        self.reason = rejection.error or "insufficient_scope"

    async def close(self) -> None:
        await self.websocket.close(code=WEBSOCKET_POLICY_VIOLATION, reason=self.reason)


def _refuse_websocket(websocket: WebSocket) -> Responder:
    def respond(rejection: Rejection, realm: str) -> _WebSocketRefusal:
        return _WebSocketRefusal(websocket, rejection)

    return respond


def _find_connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Responder]:
    """The request an endpoint was called with, and how its framework takes a 403.

    Starlette's ``WebSocket`` and ``Request`` first; then Django, werkzeug,
    Flask (no request argument) and bare WSGI apps, recognised without
    importing any of them.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, WebSocket):
            return value, _refuse_websocket(value)
        if isinstance(value, HTTPConnection):
            return value, rejection_response
    found = find_wsgi_request(args, kwargs)
    if found is not None:
        return found
    raise TypeError(
        "require_scopes: found no request to check; decorate a Starlette endpoint or a "
        "Django view (both take the request), a Flask view (called in a request context) "
        "or a WSGI app (environ, start_response); in FastAPI use Depends(require_scopes(...))."
    )


def require_scopes(*scopes: str, realm: str | None = None) -> ScopeRequirement:
    """Require every one of ``scopes`` for a route (403 ``insufficient_scope`` otherwise).

    The challenge names ``realm``, by default the realm of the guard that let
    the request in.

    ``@require_scopes("orders:read")`` on a Starlette endpoint, or
    ``Depends(require_scopes("orders:read"))`` in FastAPI.
    """
    if not scopes:
        raise TypeError("require_scopes() needs at least one scope name")
    return ScopeRequirement(scope_set(scopes, "require_scopes"), realm)
