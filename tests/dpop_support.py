"""DPoP clients for the tests: a key per algorithm, proofs made as RFC 9449 4.2 says.

Proofs are signed with PyJWT (the ``jose`` extra), the way a Python client
would make them; the broken ones (``alg: none``, HS256, a private ``jwk``)
are made by hand, the way an attacker would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ALGS = ("ES256", "RS256", "PS256", "EdDSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@functools.cache
def private_key(alg: str, which: int = 0) -> Any:
    """One key per algorithm (and ``which``), made once per test session."""
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, *, private: bool = False) -> dict[str, Any]:
    algorithm: Any = RSAAlgorithm
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ECAlgorithm
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = OKPAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key if private else key.public_key(), as_dict=True)
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    required = {name: jwk[name] for name in members[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass
class DPoPClient:
    """A client holding one key: it makes proofs, and knows its ``jkt``."""

    alg: str = "ES256"
    which: int = 0

    @property
    def key(self) -> Any:
        return private_key(self.alg, self.which)

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key)

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        token: str | None,
        *,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A proof for ``method url`` with ``token``'s ``ath``; overrides for broken ones."""
        payload: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            payload["ath"] = ath(token)
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=headers)

    def headers(self, method: str, url: str, token: str, **kwargs: Any) -> dict[str, str]:
        """``Authorization: DPoP`` and a fresh ``DPoP`` proof for one request."""
        return {"Authorization": f"DPoP {token}", "DPoP": self.proof(method, url, token, **kwargs)}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWS made by hand: ``alg: none`` and other forgeries."""
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        )
    )
