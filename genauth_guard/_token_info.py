"""TokenInfo: one introspection answer, immutable, with the checks that need a clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What the authorization server said about a token (RFC 7662 section 2.2).

    Only ``active`` is always present. ``claims`` holds the whole answer,
    read-only, for members this class does not name. Instances are shared
    between requests through the cache, hence immutable.
    """

    active: bool
    sub: str | None = None
    scopes: frozenset[str] = frozenset()
    client_id: str | None = None
    username: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    nbf: int | None = None
    aud: tuple[str, ...] = ()
    iss: str | None = None
    jti: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, repr=False, compare=False)
    userinfo: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    """The user's profile from the userinfo endpoint (``userinfo_endpoint=``), read-only."""

    @property
    def identity(self) -> str | None:
        """The user the token speaks for: ``sub``, else ``username``; ``None`` for no user.

        ``username`` covers servers that never send ``sub``. Never
        ``client_id``: a client acting for itself (client credentials) is no
        user, and a client named ``alice`` must not pass for the user
        ``alice``; ``client_id`` names the client. An empty string counts as
        absent.
        """
        return self.sub or self.username or None

    @property
    def cnf(self) -> Mapping[str, Any] | None:
        """The answer's confirmation claim (RFC 7800 ``cnf``) read-only, or ``None``.

        ``jkt`` binds the token to a DPoP key (RFC 9449 6), ``x5t#S256`` to a
        client certificate (RFC 8705 3). Read from ``claims`` rather than kept
        apart, so an answer rebuilt from its claims (a shared cache) can never
        lose its binding and pass as a bearer token. The parser has checked
        its shape: an object whose ``jkt`` and ``x5t#S256`` are strings.
        """
        cnf = self.claims.get("cnf")
        return MappingProxyType(cnf) if isinstance(cnf, dict) else None

    @property
    def scope(self) -> str:
        """The scopes as the space-separated string RFC 7662 uses (sorted)."""
        return " ".join(sorted(self.scopes))

    def is_usable_at(self, now: float, leeway: float = 0.0) -> bool:
        """Active, not expired and already valid at ``now`` (seconds since the epoch).

        Checked on every answer *and* on every cache hit: a cached answer must
        not outlive the token's ``exp``.
        """
        if not self.active:
            return False
        if self.exp is not None and now >= self.exp + leeway:
            return False
        return not (self.nbf is not None and now < self.nbf - leeway)

    def has_scopes(self, required: frozenset[str] | set[str] | tuple[str, ...]) -> bool:
        """True when every required scope was granted."""
        return self.scopes.issuperset(required)


INACTIVE = TokenInfo(active=False)
"""The one answer every inactive, expired, revoked or unknown token gets."""
