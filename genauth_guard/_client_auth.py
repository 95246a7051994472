"""How the resource server authenticates itself to the authorization server.

RFC 6749 section 2.3.1 and the three methods GenAuth supports at its
introspection and revocation endpoints. Pure: returns the headers and form
fields to add, so both drivers and the development server share it.
"""

from __future__ import annotations

import base64
from typing import Final, Literal, get_args
from urllib.parse import quote_plus, unquote_plus

from .errors import ConfigurationError

AuthMethod = Literal["client_secret_post", "client_secret_basic", "none"]
AUTH_METHODS: Final[tuple[AuthMethod, ...]] = get_args(AuthMethod)


def check_auth_method(method: str, option: str = "auth_method") -> AuthMethod:
    """``method`` as an ``AuthMethod``, or a ``ConfigurationError`` naming ``option``."""
    for known in AUTH_METHODS:
        if method == known:
            return known
    raise ConfigurationError(
        f"{option}={method!r} is not supported; use one of " + ", ".join(AUTH_METHODS) + "."
    )


def check_client_credentials(
    method: AuthMethod, client_id: str | None, client_secret: str | None, *, option: str
) -> None:
    """Refuse, at construction, credentials the method cannot be used with."""
    if not client_id:
        raise ConfigurationError(
            "client_id is required: the authorization server must know which resource "
            "server asks (GenAuth: the app_id)."
        )
    if method != "none" and not client_secret:
        raise ConfigurationError(
            f"{option}={method!r} needs a client_secret; pass it, or use "
            f"{option}='none' for a public client."
        )


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


def client_authentication(
    method: AuthMethod, client_id: str, client_secret: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and form fields that authenticate the client with ``method``."""
    if method == "client_secret_basic":
        return {"Authorization": basic_credentials(client_id, client_secret or "")}, {}
    if method == "client_secret_post":
        return {}, {"client_id": client_id, "client_secret": client_secret or ""}
    return {}, {"client_id": client_id}
