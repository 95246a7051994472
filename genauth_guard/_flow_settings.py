"""What one introspector's flows need besides its parts: endpoints, methods, limits.

Its own module so the flows (``_flow``, ``_revocation``) share it without
importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._client_auth import ClientAuthentication


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """What one introspector's flows need besides its parts (all checked already)."""

    introspection_endpoint: str
    revocation_endpoint: str | None
    auth: ClientAuthentication
    revocation_auth: ClientAuthentication
    token_type_hint: str | None
    leeway: float
    max_concurrent_introspections: int
    queue_timeout: float
    serve_stale_on_error: bool
    timeout: float
    userinfo_endpoint: str | None = None
    require_userinfo: bool = False
    jwt_response_issuer: str | None = None
    """RFC 9701: the issuer signed answers must name; ``None``: plain JSON answers."""
