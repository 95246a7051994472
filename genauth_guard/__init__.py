"""genauth-guard: protect ASGI and WSGI apps with OAuth 2.0 token introspection.

Ask the authorization server (GenAuth, or any RFC 7662 server) whether each
bearer token is active, cache the answer no longer than the token lives, and
hand the route the token's subject and scopes.
"""

import typing as _typing

from ._cache import TokenCache
from ._challenge import Rejection
from ._introspector import Introspector
from ._redis_cache import RedisCache
from ._resilience import CircuitBreaker, RetryPolicy
from ._scopes import get_token_info, require_scopes
from ._shared import SharedCache
from ._stats import IntrospectorStats
from ._sync_introspector import SyncIntrospector
from ._token_info import TokenInfo
from ._validation import ClaimRules
from ._verifier import SyncTokenVerifier, TokenVerifier
from .discovery import ServerMetadata
from .errors import (
    AuthorizationServerUnavailable,
    ClientAuthenticationError,
    ConfigurationError,
    GenAuthGuardError,
    IntrospectionError,
    IntrospectionRequestRejected,
    InvalidIntrospectionResponse,
    InvalidRequest,
    RevocationError,
    SharedCacheError,
)

if _typing.TYPE_CHECKING:
    from ._middleware import GenAuthGuard
    from ._starlette_user import TokenUser

_STARLETTE_NAMES = frozenset({"GenAuthGuard", "TokenUser"})


def __getattr__(name: str) -> _typing.Any:
    """The ASGI guard is imported on first use: a WSGI app never loads Starlette."""
    if name in _STARLETTE_NAMES:
        from . import _middleware

        return getattr(_middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AuthorizationServerUnavailable",
    "CircuitBreaker",
    "ClaimRules",
    "ClientAuthenticationError",
    "ConfigurationError",
    "GenAuthGuard",
    "GenAuthGuardError",
    "IntrospectionError",
    "IntrospectionRequestRejected",
    "Introspector",
    "IntrospectorStats",
    "InvalidIntrospectionResponse",
    "InvalidRequest",
    "RedisCache",
    "Rejection",
    "RetryPolicy",
    "RevocationError",
    "ServerMetadata",
    "SharedCache",
    "SharedCacheError",
    "SyncIntrospector",
    "SyncTokenVerifier",
    "TokenCache",
    "TokenInfo",
    "TokenUser",
    "TokenVerifier",
    "get_token_info",
    "require_scopes",
]

__version__ = "0.1.0"
