"""The dev server's vocabulary: registered clients and users, names and rules every part uses.

No I/O and no imports from the rest of ``genauth_guard.dev``: the token
store, the HTTP endpoints and the public ``server`` module all build on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from .._client_auth import AuthMethod

PROTOCOLS: Final = ("oidc", "oauth")
DEFAULT_CLIENT_ID: Final = "dev-client"
DEFAULT_SUB: Final = "user-1"
ENDPOINT_PATHS: Final = {
    "token": "token",
    "introspection": "token/introspection",
    "revocation": "token/revocation",
    "authorization": "auth",
    "userinfo": "me",
}
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")

# OpenID Connect Core 5.4: the claims each scope asks for. GenAuth's SDK asks
# for ``user`` by default under /oauth; the dev server reads it as profile,
# email and phone together.
SCOPE_CLAIMS: Final[Mapping[str, tuple[str, ...]]] = {
    "profile": (
        "name",
        "given_name",
        "family_name",
        "nickname",
        "preferred_username",
        "picture",
        "updated_at",
    ),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}
SCOPE_ALIASES: Final[Mapping[str, tuple[str, ...]]] = {"user": ("profile", "email", "phone")}


def is_scope_token(value: object) -> bool:
    """True for one RFC 6749 scope name (printable ASCII, no space, quote or backslash)."""
    return isinstance(value, str) and _SCOPE_TOKEN.fullmatch(value) is not None


class OAuthError(Exception):
    """An OAuth error answer (RFC 6749 4.1.2.1, 5.2; RFC 6750 3.1): status, code, description.

    Raised by the store's rules and turned into JSON, a redirect or a page
    by the HTTP layer. The description never holds a token or a secret.
    """

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def _redirect_uris(values: Iterable[str] | str, what: str) -> tuple[str, ...]:
    """Absolute URIs without a fragment (RFC 6749 3.1.2), compared later character for character."""
    if isinstance(values, str):
        values = (values,)
    result = tuple(values)
    for uri in result:
        if not isinstance(uri, str):
            raise ValueError(f"{what} must be strings, got {uri!r}")
        parts = urlsplit(uri)
        if not parts.scheme or not (parts.netloc or parts.path):
            raise ValueError(f"{what}: {uri!r} is not an absolute URI (RFC 6749 3.1.2)")
        if "#" in uri:
            raise ValueError(f"{what}: {uri!r} must not have a #fragment (RFC 6749 3.1.2)")
    return result


@dataclass(frozen=True)
class DevClient:
    """A client registered at the dev server, and how it must authenticate.

    ``redirect_uris`` are where the authorization code flow may send a code,
    ``post_logout_redirect_uris`` where logout may send the browser; both are
    matched exactly, as GenAuth's console registers them. A client without
    ``redirect_uris`` can still use ``client_credentials`` and introspection.
    ``client_public_key`` (PEM or a public JWK) verifies a ``private_key_jwt``
    client's assertions.
    """

    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: AuthMethod = "client_secret_post"
    redirect_uris: Sequence[str] = ()  # kept as a tuple
    post_logout_redirect_uris: Sequence[str] = ()
    client_public_key: object = field(default=None, repr=False, compare=False)  # private_key_jwt

    def __post_init__(self) -> None:
        # Lists from code or a config file are welcome; the record stays immutable.
        for name in ("redirect_uris", "post_logout_redirect_uris"):
            value = _redirect_uris(getattr(self, name), f"client {self.client_id!r} {name}")
            object.__setattr__(self, name, value)


@dataclass(frozen=True)
class DevUser:
    """A user who can sign in at the dev server's login form.

    ``sub`` is the stable id tokens and introspection name. The other fields
    are the OpenID Connect standard claims ``/me`` answers with (OIDC Core
    5.1), each under the scope that asks for it: ``profile`` (name, picture,
    ``username`` as ``preferred_username``, ``updated_at``...), ``email``,
    ``phone``, ``address``. ``updated_at`` defaults to the server's start.
    """

    sub: str
    name: str | None = None
    username: str | None = None
    email: str | None = None
    email_verified: bool = False
    phone_number: str | None = None
    phone_number_verified: bool = False
    picture: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    nickname: str | None = None
    address: str | None = None
    updated_at: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.sub, str) or not self.sub.strip():
            raise ValueError(f"a dev user needs a non-empty sub, got {self.sub!r}")

    @property
    def display_name(self) -> str:
        return self.name or self.username or self.sub

    def claims(self, default_updated_at: int) -> dict[str, Any]:
        """Every standard claim this user has (``sub`` included), before any scope filter."""
        values: dict[str, Any] = {
            "sub": self.sub,
            "name": self.name,
            "given_name": self.given_name,
            "family_name": self.family_name,
            "nickname": self.nickname,
            "preferred_username": self.username,
            "picture": self.picture,
            "updated_at": self.updated_at if self.updated_at is not None else default_updated_at,
            "email": self.email,
            "phone_number": self.phone_number,
            "address": {"formatted": self.address} if self.address else None,
        }
        if self.email:
            values["email_verified"] = self.email_verified
        if self.phone_number:
            values["phone_number_verified"] = self.phone_number_verified
        return {name: value for name, value in values.items() if value is not None}


DEFAULT_USER: Final = DevUser(
    DEFAULT_SUB,
    name="Ada Lovelace",
    username="ada",
    email="ada@example.com",
    email_verified=True,
    phone_number="+15550100",
    picture="https://example.com/ada.png",
    given_name="Ada",
    family_name="Lovelace",
)


def claims_for_scopes(claims: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    """``claims`` filtered to what ``scopes`` ask for (OIDC Core 5.4); ``sub`` always."""
    wanted = {"sub"}
    for scope in scopes:
        for name in SCOPE_ALIASES.get(scope, (scope,)):
            wanted.update(SCOPE_CLAIMS.get(name, ()))
    return {name: value for name, value in claims.items() if name in wanted}
