"""Signed client authentication: ``client_secret_jwt`` and ``private_key_jwt`` (RFC 7523).

The client proves who it is with a JWT it signs for each request (RFC 7523
section 3, OpenID Connect Core section 9) instead of sending a secret:
``iss`` = ``sub`` = the client id, ``aud`` = the authorization server's
issuer when known (else the URL being called), a fresh random ``jti``,
``iat`` now and ``exp`` 60 seconds later. ``apply`` runs for every request
and every retry, so no assertion is ever sent twice; a server that keeps
the ``jti``s it saw can refuse any replay.

``client_secret_jwt`` signs with HMAC over the client secret (the secret
never travels); ``private_key_jwt`` signs with the client's private key,
whose public half the server knows (the secret is not even needed).
Keys are loaded and checked once, at construction (``_jose``), and never
appear in a ``repr``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Final

from ._jose import (
    ASYMMETRIC_ALGS,
    HMAC_ALGS,
    HMAC_MIN_BYTES,
    default_algorithm,
    jose_library,
    key_fits,
    load_private_key,
    sign_jws,
)
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._credentials import ClientCredentials
    from ._jose import PrivateKey

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME: Final = 60
"""Seconds an assertion is valid: long enough for one request, short for a stolen one."""


def _claims(client_id: str, audience: str) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),  # 192 random bits: never the same twice
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }


def _fields(client_id: str, assertion: str) -> dict[str, str]:
    return {
        "client_id": client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
    }


@dataclass(frozen=True, slots=True)
class ClientSecretJwt:
    """``client_secret_jwt``: an assertion signed with HMAC (HS256 by default) over the secret."""

    client_id: str
    client_secret: str = field(repr=False)
    alg: str = "HS256"
    audience: str | None = None
    method: ClassVar[str] = "client_secret_jwt"

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        claims = _claims(self.client_id, self.audience or url)
        assertion = sign_jws(claims, self.client_secret.encode(), self.alg, {"typ": "JWT"})
        return {}, _fields(self.client_id, assertion)


@dataclass(frozen=True, slots=True)
class PrivateKeyJwt:
    """``private_key_jwt``: an assertion signed with the client's private key."""

    client_id: str
    private_key: PrivateKey = field(repr=False)
    alg: str
    key_id: str | None = None
    audience: str | None = None
    method: ClassVar[str] = "private_key_jwt"

    def apply(self, url: str) -> tuple[dict[str, str], dict[str, str]]:
        claims = _claims(self.client_id, self.audience or url)
        headers = {"typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        assertion = sign_jws(claims, self.private_key, self.alg, headers)
        return {}, _fields(self.client_id, assertion)


def client_secret_jwt(credentials: ClientCredentials, option: str) -> ClientSecretJwt:
    """The ``client_secret_jwt`` method for ``credentials``, checked (``ConfigurationError``)."""
    jose_library(f"{option}='client_secret_jwt'")
    secret = credentials.client_secret
    if not secret:
        raise ConfigurationError(
            f"{option}='client_secret_jwt' signs with the client_secret; pass it (GenAuth: "
            "the App Secret), or use private_key_jwt with client_private_key."
        )
    alg = credentials.assertion_alg or "HS256"
    if alg not in HMAC_ALGS:
        raise ConfigurationError(
            f"client_assertion_alg={alg!r} does not fit client_secret_jwt; use one of "
            + ", ".join(HMAC_ALGS)
            + " (RS*, PS*, ES* and EdDSA are for private_key_jwt)."
        )
    if len(secret.encode()) < HMAC_MIN_BYTES[alg]:
        raise ConfigurationError(
            f"{option}='client_secret_jwt' with {alg} needs a client_secret of at least "
            f"{HMAC_MIN_BYTES[alg]} bytes (RFC 7518 3.2); this one is shorter. Ask the "
            "authorization server for a longer secret, or use private_key_jwt."
        )
    return ClientSecretJwt(credentials.client_id, secret, alg, credentials.assertion_audience)


def private_key_jwt(credentials: ClientCredentials, option: str) -> PrivateKeyJwt:
    """The ``private_key_jwt`` method for ``credentials``, checked (``ConfigurationError``)."""
    jose_library(f"{option}='private_key_jwt'")
    material = credentials.private_key
    if material is None:
        raise ConfigurationError(
            f"{option}='private_key_jwt' needs client_private_key: the client's private key "
            "as PEM text or a JWK (from_env: GENAUTH_CLIENT_PRIVATE_KEY_FILE)."
        )
    key = load_private_key(material)
    jwk_alg, jwk_kid = _jwk_members(material)
    alg = credentials.assertion_alg or jwk_alg or default_algorithm(key)
    if alg in HMAC_ALGS or alg not in ASYMMETRIC_ALGS:
        raise ConfigurationError(
            f"client_assertion_alg={alg!r} cannot sign with a private key; use one of "
            + ", ".join(ASYMMETRIC_ALGS)
            + " (HS* is for client_secret_jwt)."
        )
    if not key_fits(key, alg):
        raise ConfigurationError(
            f"client_assertion_alg={alg!r} does not fit the key in client_private_key (its "
            f"default would be {default_algorithm(key)}): RS*/PS* need RSA, ES256 P-256, "
            "ES384 P-384, ES512 P-521, EdDSA Ed25519 or Ed448."
        )
    key_id = credentials.key_id if credentials.key_id is not None else jwk_kid
    if key_id is not None and (not isinstance(key_id, str) or not key_id):
        raise ConfigurationError("client_key_id must be a non-empty str (the JWK's kid).")
    return PrivateKeyJwt(credentials.client_id, key, alg, key_id, credentials.assertion_audience)


def _jwk_members(material: object) -> tuple[str | None, str | None]:
    """The ``alg`` and ``kid`` a JWK names for itself, if ``material`` is one."""
    if isinstance(material, str) and material.strip().startswith("{"):
        material = json.loads(material)  # load_private_key parsed it already: it is JSON
    if not isinstance(material, Mapping):
        return None, None
    alg, kid = material.get("alg"), material.get("kid")
    return (alg if isinstance(alg, str) else None), (kid if isinstance(kid, str) else None)
