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

from ._challenge import Offer, Rejection, pointing_to
from ._policy import missing_scopes
from ._request_view import (
    ENVIRON_KEY,
    OFFER_KEY,
    REALM_KEY,
    RESOURCE_METADATA_KEY,
    SCOPE_KEY,
    STRATEGY_KEY,
)
from ._responses import WebSocketRefusal, find_request, http_exception, starlette_response
from ._scope_policy import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    Match,
    ScopeStrategy,
    check_match,
    check_strategy,
    scope_set,
)
from ._token_info import INACTIVE, TokenInfo

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

DEFAULT_REALM = "api"
_POSITIONAL_OR_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


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


def guard_strategy(request: Any) -> str:
    """The scope strategy of the guard that let the request in (``"exact"`` without one)."""
    strategy = _lookup(request, STRATEGY_KEY, str)
    return strategy if strategy in STRATEGIES else DEFAULT_STRATEGY


def guard_resource_metadata(request: Any) -> str | None:
    """The RFC 9728 metadata URL of the guard that let the request in, if it has one."""
    return _lookup(request, RESOURCE_METADATA_KEY, str)


def guard_offer(request: Any, rejection: Rejection) -> Rejection:
    """``rejection`` with the challenges of the guard that let the request in (DPoP or Bearer)."""
    offer = _lookup(request, OFFER_KEY, Offer)
    return rejection if offer is None else rejection.offering(offer)


def rejection_response(rejection: Rejection, realm: str = DEFAULT_REALM) -> Any:
    """A Starlette response for ``rejection``."""
    return starlette_response(rejection, realm)


class ScopeRequirement:
    """What ``require_scopes`` returns: a decorator and a FastAPI dependency.

    As a decorator it wraps Starlette endpoints (functions or methods, sync
    or async, taking the request). As a dependency (``Depends(...)``) FastAPI
    calls it with the request; it raises ``HTTPException(403)`` with the
    RFC 6750 challenge, and returns the ``TokenInfo``.
    """

    def __init__(
        self,
        scopes: frozenset[str],
        realm: str | None,
        match: Match = "all",
        scope_strategy: ScopeStrategy | None = None,
    ) -> None:
        self.scopes = scopes
        self.realm = realm
        self.match = match
        self.scope_strategy = scope_strategy

    @property
    def __signature__(self) -> inspect.Signature:
        """What FastAPI reads to know what to inject when used as a dependency.

        A property, so Starlette is imported only by apps that ask (FastAPI
        ones), never by a WSGI app decorating its views.
        """
        from starlette.requests import Request

        return inspect.Signature(
            [inspect.Parameter("request", _POSITIONAL_OR_KEYWORD, annotation=Request)],
            return_annotation=TokenInfo,
        )

    def rejection(self, info: TokenInfo | None, request: Any = None) -> Rejection | None:
        """Why ``info`` may not pass, or ``None``.

        With ``request``, the guard that let it in supplies the strategy
        (when ``scope_strategy`` is ``None``) and the metadata URL the 403
        names (RFC 9728 5.1: MCP clients step up their scopes from it).
        """
        strategy: str = self.scope_strategy or (
            DEFAULT_STRATEGY if request is None else guard_strategy(request)
        )
        rejection = missing_scopes(info or INACTIVE, self.scopes, self.match, strategy)
        if rejection is None or request is None:
            return rejection
        return pointing_to(rejection, guard_resource_metadata(request))

    def __call__(self, target: Any = None, *, request: Any = None) -> Any:
        if request is not None or _is_starlette_connection(target):
            # FastAPI calls dependencies with keywords: Depends(...) passes request=.
            return self._dependency(request if request is not None else target)
        if callable(target):
            return self._decorate(target)
        raise TypeError("require_scopes(...) decorates an endpoint or is used as Depends(...)")

    def _dependency(self, request: Any) -> TokenInfo:
        info = get_token_info(request) or INACTIVE
        rejection = self.rejection(info, request)
        if rejection is not None:
            rejection = guard_offer(request, rejection)
            raise http_exception(rejection, self.realm or guard_realm(request))
        return info

    def _decorate(self, endpoint: F) -> F:
        def denied(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            """The framework's 403 response, or ``None`` when the endpoint may run."""
            request, respond = find_request(args, kwargs)
            rejection = self.rejection(get_token_info(request), request)
            if rejection is None:
                return None
            return respond(guard_offer(request, rejection), self.realm or guard_realm(request))

        if inspect.iscoroutinefunction(endpoint):

            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                response = denied(args, kwargs)
                if response is None:
                    return await endpoint(*args, **kwargs)
                if isinstance(response, WebSocketRefusal):
                    await response.close()
                    return None
                return response

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            response = denied(args, kwargs)
            if response is None:
                return endpoint(*args, **kwargs)
            if isinstance(response, WebSocketRefusal):
                return response.close()  # a coroutine: what runs a WebSocket endpoint awaits
            return response

        return sync_wrapper  # type: ignore[return-value]


def _is_starlette_connection(value: object) -> bool:
    """A Starlette ``Request``/``WebSocket`` (FastAPI passes one positionally), by shape."""
    scope = getattr(value, "scope", None)
    return isinstance(scope, Mapping) and scope.get("type") in ("http", "websocket")


def require_scopes(
    *scopes: str,
    realm: str | None = None,
    match: Match = "all",
    scope_strategy: ScopeStrategy | None = None,
) -> ScopeRequirement:
    """Require ``scopes`` for a route (403 ``insufficient_scope`` otherwise).

    ``match="all"`` (every scope) or ``"any"`` (one of them suffices; the
    403 names them all). ``scope_strategy``: ``"exact"``, ``"hierarchic"``
    or ``"wildcard"`` (see ``GenAuthGuard``); ``None`` takes the strategy of
    the guard that let the request in. The challenge names ``realm``, by
    default the guard's realm, and the guard's RFC 9728 metadata URL.

    ``@require_scopes("orders:read")`` on a Starlette endpoint, or
    ``Depends(require_scopes("orders:read"))`` in FastAPI.
    """
    if not scopes:
        raise TypeError("require_scopes() needs at least one scope name")
    strategy = None if scope_strategy is None else check_strategy(scope_strategy)
    return ScopeRequirement(
        scope_set(scopes, "require_scopes"), realm, check_match(match), strategy
    )
