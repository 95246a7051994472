"""The dev server's signing key: RS256 ID tokens and the JWKS that verifies them.

PyJWT with cryptography (``pip install 'genauth-guard[dev-server]'``). Only
the dev server imports this module, and only once it signs or verifies
something: the library, and a dev server that only mints opaque tokens, run
without either package.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any, Final

try:
    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm
except ImportError as exc:  # pragma: no cover - depends on the install
    raise RuntimeError(
        "ID tokens need PyJWT with cryptography: pip install 'genauth-guard[dev-server]'"
    ) from exc

ALGORITHM: Final = "RS256"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def token_hash(token: str) -> str:
    """OIDC Core 3.1.3.6 ``at_hash``: the left half of SHA-256 of the token, base64url."""
    digest = hashlib.sha256(token.encode("ascii")).digest()
    return _b64url(digest[: len(digest) // 2])


class SigningKey:
    """One RSA key, made when first needed (2048 bits), named by its RFC 7638 thumbprint."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None
        self._jwk: dict[str, Any] = {}

    def _private(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                public = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
                required = {name: public[name] for name in ("e", "kty", "n")}
                canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
                kid = _b64url(hashlib.sha256(canonical.encode()).digest())
                self._jwk = {**required, "kid": kid, "use": "sig", "alg": ALGORITHM}
                self._key = key
            return self._key

    @property
    def kid(self) -> str:
        self._private()
        return str(self._jwk["kid"])

    def jwks(self) -> dict[str, Any]:
        """The JWK Set (RFC 7517 5) with the public key."""
        self._private()
        return {"keys": [dict(self._jwk)]}

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        """A compact JWS of ``claims`` (RS256, with ``kid`` so verifiers can pick the key)."""
        return jwt.encode(
            claims, self._private(), algorithm=ALGORITHM, headers={"kid": self.kid, "typ": typ}
        )

    def verify_hint(self, token: str, issuer: str) -> dict[str, Any] | None:
        """The claims of an ID token this key signed for ``issuer``, expired or not; else None.

        For ``id_token_hint`` at logout: OpenID Connect RP-Initiated Logout 1.0
        lets the hint be expired, but it must be ours.
        """
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._private().public_key(),
                algorithms=[ALGORITHM],
                issuer=issuer,
                options={"verify_exp": False, "verify_aud": False, "require": ["sub", "aud"]},
            )
        except jwt.PyJWTError:
            return None
        return claims
