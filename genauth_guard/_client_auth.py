"""How the resource server authenticates itself to the authorization server.

RFC 6749 section 2.3.1 and the methods GenAuth supports at its introspection
and revocation endpoints, one small class each, chosen by name from
``METHODS``. A method turns the client's credentials into the headers and
form fields of one request (``apply``), so a new method — a signed client
assertion, say — is one class here and one entry in ``METHODS``; the flow,
the drivers and the settings never change for it. Pure: no I/O, so both
drivers and the development server share it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal, Protocol, get_args
from urllib.parse import quote_plus, unquote_plus

from ._client_assertion import client_secret_jwt, private_key_jwt
from ._credentials import ClientCredentials
from .errors import ConfigurationError

AuthMethod = Literal[
    "client_secret_post", "client_secret_basic", "none", "client_secret_jwt", "private_key_jwt"
]


class ClientAuthentication(Protocol):
    """One client authentication method, bound to the client's credentials."""

    @property
    def method(self) -> str:
        """The method's registered name (``client_secret_post``...)."""
        ...

    @property
    def client_id(self) -> str: ...

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        """Headers and form fields that authenticate a request to ``url``."""
        ...


@dataclass(frozen=True, slots=True)
class ClientSecretPost:
    """``client_secret_post``: id and secret in the form (GenAuth's default)."""

    client_id: str
    client_secret: str = field(repr=False)
    method: ClassVar[str] = "client_secret_post"

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"client_id": self.client_id, "client_secret": self.client_secret}


@dataclass(frozen=True, slots=True)
class ClientSecretBasic:
    """``client_secret_basic``: HTTP Basic with the url-encoded id and secret."""

    client_id: str
    client_secret: str = field(repr=False)
    method: ClassVar[str] = "client_secret_basic"

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {"Authorization": basic_credentials(self.client_id, self.client_secret)}, {}


@dataclass(frozen=True, slots=True)
class NoClientAuthentication:
    """``none``: a public client names itself and proves nothing."""

    client_id: str
    method: ClassVar[str] = "none"

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        return {}, {"client_id": self.client_id}


def _needs_secret(method: str, credentials: ClientCredentials, option: str) -> str:
    if not credentials.client_secret:
        raise ConfigurationError(
            f"{option}={method!r} needs a client_secret; pass it, or use "
            f"{option}='none' for a public client."
        )
    return credentials.client_secret


METHODS: Final[dict[str, Callable[[ClientCredentials, str], ClientAuthentication]]] = {
    "client_secret_post": lambda c, option: ClientSecretPost(
        c.client_id, _needs_secret("client_secret_post", c, option)
    ),
    "client_secret_basic": lambda c, option: ClientSecretBasic(
        c.client_id, _needs_secret("client_secret_basic", c, option)
    ),
    "none": lambda c, option: NoClientAuthentication(c.client_id),
    "client_secret_jwt": lambda c, option: client_secret_jwt(c.with_audience(), option),
    "private_key_jwt": lambda c, option: private_key_jwt(c.with_audience(), option),
}
"""Every method by name: a builder from the credentials (``option`` names the setting in errors)."""

AUTH_METHODS: Final[tuple[AuthMethod, ...]] = get_args(AuthMethod)
assert set(AUTH_METHODS) == set(METHODS), "every AuthMethod has exactly one builder"


def check_auth_method(method: object, option: str = "auth_method") -> AuthMethod:
    """``method`` if genauth-guard implements it, else a ``ConfigurationError``."""
    if isinstance(method, str) and method in METHODS:
        return method  # type: ignore[return-value]
    raise ConfigurationError(
        f"{option}={method!r} is not supported; use one of " + ", ".join(AUTH_METHODS) + "."
    )


def client_authentication(
    method: str, credentials: ClientCredentials, *, option: str = "auth_method"
) -> ClientAuthentication:
    """The method ``method`` bound to ``credentials``; ``ConfigurationError`` if it cannot be."""
    if not credentials.client_id:
        raise ConfigurationError(
            "client_id is required: the authorization server must know which resource "
            "server asks (GenAuth: the app_id)."
        )
    return METHODS[check_auth_method(method, option)](credentials, option)


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization`` value for ``client_secret_basic``.

    RFC 6749 2.3.1: id and secret are form-urlencoded *before* base64, so a
    ``:`` in the id cannot be confused with the separator.
    """
    pair = f"{quote_plus(client_id, safe='')}:{quote_plus(client_secret, safe='')}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def parse_basic_credentials(value: str) -> tuple[str, str] | None:
    """The (id, secret) of a ``client_secret_basic`` header, or ``None`` if malformed."""
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return unquote_plus(client_id), unquote_plus(secret)
