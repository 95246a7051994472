"""Exceptions raised by genauth-guard.

Every message says what went wrong and what to do about it, and none ever
contains a token or a client secret: messages end up in logs.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationServerUnavailable",
    "ClientAuthenticationError",
    "ConfigurationError",
    "GenAuthGuardError",
    "IntrospectionError",
    "IntrospectionRequestRejected",
    "InvalidIntrospectionResponse",
    "InvalidRequest",
    "RevocationError",
]


class GenAuthGuardError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(GenAuthGuardError, ValueError):
    """An option has a value the guard cannot work with (raised at construction)."""


class IntrospectionError(GenAuthGuardError):
    """The authorization server could not give an answer about a token.

    This never means "the token is bad": it means nobody knows. The guard
    fails closed on it (503 with ``Retry-After``) and never caches it.

    ``status_code`` is the HTTP status the authorization server answered with,
    if it answered; ``retry_after`` the seconds it asked us to wait, if any;
    ``reason`` a short machine-readable word for logs and metrics;
    ``server_wide`` is true when the failure cannot be about this one token
    (the connection failed, the server answered 429), which the circuit
    breaker counts differently.
    """

    reason = "introspection_failed"

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        retry_after: float | None = None,
        server_wide: bool = False,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after
        self.server_wide = server_wide


class AuthorizationServerUnavailable(IntrospectionError):
    """Network failure, timeout, 5xx or 429: worth retrying later."""

    reason = "server_unavailable"


class InvalidIntrospectionResponse(IntrospectionError):
    """The server answered 200 with something that is not an RFC 7662 answer."""

    reason = "invalid_response"


class ClientAuthenticationError(IntrospectionError):
    """The server rejected the resource server's own credentials (``invalid_client``)."""

    reason = "invalid_client"


class IntrospectionRequestRejected(IntrospectionError):
    """The server refused the request for another 4xx reason (``invalid_request``, 403, 404...)."""

    reason = "request_rejected"


class RevocationError(GenAuthGuardError):
    """The server did not confirm a revocation (RFC 7009)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class SharedCacheError(GenAuthGuardError):
    """The shared cache (Redis) could not be told about an invalidation.

    Raised by ``invalidate``, ``invalidate_subject`` and ``revoke`` after
    they did everything they could locally: this process has forgotten the
    answer, but other processes may keep serving theirs until its cache
    lifetime ends. Retry once the shared cache is back, or wait that long.
    """


class InvalidRequest(GenAuthGuardError):
    """The request carries its credentials in a malformed way (RFC 6750 ``invalid_request``)."""
