"""Claim rules a resource server may add: audience, issuer, client, token type.

One rule holds without being asked for: a refresh token is not an access
token. Some servers introspect refresh tokens too (RFC 7662 allows it) and
answer ``active: true``; a client that sends its refresh token as a bearer
token must not get in with a credential meant only for the token endpoint.
Such an answer names the type in ``token_type`` (``refresh_token``, RFC 8693's
URN) or, at Keycloak, in the ``typ`` claim (``Refresh``, ``Offline``).

Applied once, to the answer as it arrives, before it is cached: an active
answer that breaks a rule is stored and served as ``INACTIVE`` (401
``invalid_token``). The rules are fixed per introspector and the cache is
per introspector, so a cached answer can never have skipped them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ._token_info import INACTIVE, TokenInfo
from .errors import ConfigurationError

REFRESH_TOKEN_TYPES = frozenset(
    {"refresh_token", "refresh", "urn:ietf:params:oauth:token-type:refresh_token"}
)
"""``token_type`` values (lower case) that name a refresh token."""

REFRESH_TYP_CLAIMS = frozenset({"refresh", "offline"})
"""Keycloak's ``typ`` claim (lower case) of a refresh token and of an offline (refresh) token."""


def is_refresh_token(info: TokenInfo) -> bool:
    """Whether the answer says it is about a refresh token (``token_type`` or ``typ``)."""
    typ = info.claims.get("typ")
    return (info.token_type or "").lower() in REFRESH_TOKEN_TYPES or (
        isinstance(typ, str) and typ.lower() in REFRESH_TYP_CLAIMS
    )


def _names(value: str | Iterable[str] | None, option: str) -> frozenset[str] | None:
    if value is None:
        return None
    names = frozenset((value,) if isinstance(value, str) else value)
    if not names or not all(isinstance(name, str) and name for name in names):
        raise ConfigurationError(
            f"{option}={value!r} must be a non-empty string or a non-empty list of them "
            "(or None to skip the check)."
        )
    return names


@dataclass(frozen=True, slots=True)
class ClaimRules:
    """What an active answer must also say to be accepted.

    ``audience``: ``aud`` must contain one of these. ``issuer``: ``iss``
    must equal one of these (GenAuth's introspection ``iss`` has no
    ``/oidc`` suffix). ``allowed_client_ids``: ``client_id`` must be one of
    these. ``token_type``: ``token_type`` must equal it, ignoring case
    (``"Bearer"``). A missing claim fails its rule. ``None``: no check.

    ``refuse_refresh_tokens`` (on unless ``token_type`` names a refresh
    token, ``token_type="refresh_token"``): an answer about a refresh token
    is refused, whatever the other rules say.
    """

    audience: frozenset[str] | None = None
    issuer: frozenset[str] | None = None
    allowed_client_ids: frozenset[str] | None = None
    token_type: str | None = None
    refuse_refresh_tokens: bool = True

    @classmethod
    def from_options(
        cls,
        *,
        audience: str | Iterable[str] | None = None,
        issuer: str | Iterable[str] | None = None,
        allowed_client_ids: Iterable[str] | None = None,
        token_type: str | None = None,
    ) -> ClaimRules:
        """The rules for the introspector options of the same names (``ConfigurationError``)."""
        if token_type is not None and (not isinstance(token_type, str) or not token_type):
            raise ConfigurationError(
                f"token_type={token_type!r} must be a token type such as 'Bearer', or None."
            )
        if isinstance(allowed_client_ids, str):
            raise ConfigurationError(
                f"allowed_client_ids={allowed_client_ids!r} must be a list of client ids, "
                "not one string."
            )
        return cls(
            audience=_names(audience, "audience"),
            issuer=_names(issuer, "issuer"),
            allowed_client_ids=_names(allowed_client_ids, "allowed_client_ids"),
            token_type=token_type.lower() if token_type else None,
            refuse_refresh_tokens=not (token_type and token_type.lower() in REFRESH_TOKEN_TYPES),
        )

    @property
    def empty(self) -> bool:
        """True when no rule is checked at all (answers pass as they are)."""
        return not (
            self.audience
            or self.issuer
            or self.allowed_client_ids
            or self.token_type
            or self.refuse_refresh_tokens
        )

    def violation(self, info: TokenInfo) -> str | None:
        """Why ``info`` breaks a rule (safe for logs), or ``None`` if it keeps them all."""
        if self.refuse_refresh_tokens and is_refresh_token(info):
            return (
                "it is a refresh token, not an access token (its token_type or typ says so); "
                "pass token_type='refresh_token' only if this API really takes refresh tokens"
            )
        if self.audience is not None and self.audience.isdisjoint(info.aud):
            return "its aud does not name this resource server (audience option)"
        if self.issuer is not None and info.iss not in self.issuer:
            return "its iss is not an accepted issuer (issuer option)"
        if self.allowed_client_ids is not None and info.client_id not in self.allowed_client_ids:
            return "its client_id is not in allowed_client_ids"
        if self.token_type is not None and (info.token_type or "").lower() != self.token_type:
            return f"its token_type is not {self.token_type!r} (token_type option)"
        return None

    def apply(self, info: TokenInfo) -> tuple[TokenInfo, str | None]:
        """``info`` itself, or ``INACTIVE`` and the reason when an active answer breaks a rule."""
        if not info.active or self.empty:
            return info, None
        reason = self.violation(info)
        return (info, None) if reason is None else (INACTIVE, reason)
