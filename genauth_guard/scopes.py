"""Per-route scope checks and access to the current request's ``TokenInfo``.

``require_scopes`` answers 403 ``insufficient_scope`` (RFC 6750) itself, with
the same body and challenge as the middleware; it checks on every call, so a
cached answer never lets a token into a route whose scopes it lacks.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from .challenge import Rejection
from .policy import missing_scopes, scope_set
from .token_info import INACTIVE, TokenInfo

F = TypeVar("F", bound=Callable[..., Any])

SCOPE_KEY = "token_info"
ENVIRON_KEY = "genauth_guard.token_info"
DEFAULT_REALM = "api"
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


def get_token_info(request: Any) -> TokenInfo | None:
    """The ``TokenInfo`` of the current request, or ``None`` if the guard did not pass it.

    Takes a Starlette/FastAPI ``Request`` or ``WebSocket``, an ASGI scope, a
    WSGI environ, a werkzeug/Flask request or a Django ``HttpRequest``.
    """
    for holder, key in (
        (getattr(request, "scope", None), SCOPE_KEY),
        (getattr(request, "environ", None), ENVIRON_KEY),
        (getattr(request, "META", None), ENVIRON_KEY),
        (request, SCOPE_KEY),
        (request, ENVIRON_KEY),
    ):
        if isinstance(holder, Mapping):
            info = holder.get(key)
            if isinstance(info, TokenInfo):
                return info
    return None


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

    def __init__(self, scopes: frozenset[str], realm: str) -> None:
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

    def __call__(self, target: Any) -> Any:
        if isinstance(target, HTTPConnection):
            return self._dependency(target)
        if callable(target):
            return self._decorate(target)
        raise TypeError("require_scopes(...) decorates an endpoint or is used as Depends(...)")

    def _dependency(self, request: HTTPConnection) -> TokenInfo:
        info = get_token_info(request) or INACTIVE
        rejection = self.rejection(info)
        if rejection is not None:
            raise HTTPException(
                rejection.status, rejection.description, headers=dict(rejection.headers(self.realm))
            )
        return info

    def _decorate(self, endpoint: F) -> F:
        def denied(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Response | None:
            conn = _find_connection(args, kwargs)
            rejection = self.rejection(get_token_info(conn))
            return None if rejection is None else rejection_response(rejection, self.realm)

        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                return denied(args, kwargs) or await endpoint(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return denied(args, kwargs) or endpoint(*args, **kwargs)

        return sync_wrapper  # type: ignore[return-value]


def _find_connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise TypeError(
        "require_scopes: the endpoint was not called with a Starlette Request; decorate "
        "endpoints that take the request, or use Depends(require_scopes(...)) in FastAPI."
    )


def require_scopes(*scopes: str, realm: str = DEFAULT_REALM) -> ScopeRequirement:
    """Require every one of ``scopes`` for a route (403 ``insufficient_scope`` otherwise).

    ``@require_scopes("orders:read")`` on a Starlette endpoint, or
    ``Depends(require_scopes("orders:read"))`` in FastAPI.
    """
    if not scopes:
        raise TypeError("require_scopes() needs at least one scope name")
    return ScopeRequirement(scope_set(scopes, "require_scopes"), realm)
