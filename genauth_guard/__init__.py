"""genauth-guard: protect ASGI and WSGI apps with OAuth 2.0 token introspection.

Ask the authorization server (GenAuth, or any RFC 7662 server) whether each
bearer token is active, cache the answer no longer than the token lives, and
hand the route the token's subject and scopes.
"""

from ._challenge import Rejection
from ._introspector import Introspector
from ._middleware import GenAuthGuard, TokenUser
from ._scopes import get_token_info, require_scopes
from ._sync_introspector import SyncIntrospector
from ._token_info import TokenInfo
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
)

__all__ = [
    "AuthorizationServerUnavailable",
    "ClientAuthenticationError",
    "ConfigurationError",
    "GenAuthGuard",
    "GenAuthGuardError",
    "IntrospectionError",
    "IntrospectionRequestRejected",
    "Introspector",
    "InvalidIntrospectionResponse",
    "InvalidRequest",
    "Rejection",
    "RevocationError",
    "ServerMetadata",
    "SyncIntrospector",
    "TokenInfo",
    "TokenUser",
    "get_token_info",
    "require_scopes",
]

__version__ = "0.1.0"
