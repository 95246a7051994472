"""The project's one door to JOSE: keys, algorithm rules, JWS signing and verification.

Everything that signs or verifies a JWT goes through here — client
assertions (RFC 7523), RFC 9701 introspection answers, and DPoP proofs
(RFC 9449) — so the algorithm rules are written once and the JOSE library
(PyJWT with ``cryptography``, the ``genauth-guard[jose]`` extra) is imported
in one place, lazily: ``import genauth_guard`` works without it, and a
feature that needs it says which extra to install (``jose_library``).

The rules, for every caller:

- asymmetric algorithms only where a key is verified (``ASYMMETRIC_ALGS``:
  RS*, PS*, ES*, EdDSA), never ``none``, never HS* (a public key used as an
  HMAC secret is the classic alg-confusion forgery); HS* only for
  ``client_secret_jwt`` (``HMAC_ALGS``);
- an algorithm must fit its key (``key_fits``): RSA of 2048 bits or more
  for RS*/PS*, P-256/P-384/P-521 for ES256/ES384/ES512, Ed25519/Ed448 for
  EdDSA;
- the key that verifies is always chosen by the caller, never taken from
  the token: ``jwk``, ``jku``, ``x5u``, ``x5c`` headers are never read here
  (DPoP reads ``jwk`` on purpose, through ``load_public_jwk``);
- a ``crit`` header is refused (no extension is understood), and so is
  ``b64`` (unencoded payloads);
- errors are ``JoseError`` with messages of our own: a library's message
  may quote the key it failed to load, private members included.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, NoReturn, TypeAlias

from .errors import ConfigurationError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey, Ed448PublicKey
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

    PrivateKey: TypeAlias = (
        RSAPrivateKey | EllipticCurvePrivateKey | Ed25519PrivateKey | Ed448PrivateKey
    )
    PublicKey: TypeAlias = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

EXTRA: Final = "genauth-guard[jose]"
RSA_ALGS: Final = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS: Final[Mapping[str, str]] = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
OKP_ALGS: Final = ("EdDSA",)
ASYMMETRIC_ALGS: Final[tuple[str, ...]] = (*RSA_ALGS, *EC_ALGS, *OKP_ALGS)
"""Every algorithm a key may sign with; the only ones ever accepted when verifying."""
HMAC_ALGS: Final = ("HS256", "HS384", "HS512")
"""``client_secret_jwt`` only: the secret is shared, so only its holders sign or verify."""
HMAC_MIN_BYTES: Final[Mapping[str, int]] = {"HS256": 32, "HS384": 48, "HS512": 64}
"""RFC 7518 3.2: an HMAC key at least as long as the hash output."""
MIN_RSA_BITS: Final = 2048
"""RFC 7518 3.3: RSA keys of 2048 bits or more."""
_CURVES: Final[Mapping[str, str]] = {
    "secp256r1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
}
_PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}


class JoseError(ValueError):
    """A JWS or JWK that cannot be used; the message is safe to log (no key, no token)."""


def jose_library(feature: str) -> ModuleType:
    """PyJWT (``jwt``), or a ``ConfigurationError`` naming the extra that brings it.

    ``feature`` says what needs it (``auth_method='private_key_jwt'``...),
    so the message tells the user which of their settings asked.
    """
    try:
        import cryptography  # noqa: F401  # PyJWT imports it lazily; check it here, once
        import jwt
        from jwt.algorithms import has_crypto
    except ImportError:
        has_crypto = False
    if not has_crypto:
        raise ConfigurationError(
            f"{feature} needs PyJWT with cryptography: pip install '{EXTRA}'."
        ) from None
    return jwt


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``; ``JoseError`` if it is not exactly that."""
    if not isinstance(text, str) or "=" in text or len(text) % 4 == 1:
        raise JoseError("a member is not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise JoseError("a member is not base64url") from None
    if b64url(data) != text:  # other alphabets, stray bits: one encoding per value
        raise JoseError("a member is not canonical base64url")
    return data


# ---------------------------------------------------------------- keys


def _curve(key: object) -> str | None:
    name = getattr(getattr(key, "curve", None), "name", None)
    return _CURVES.get(name) if isinstance(name, str) else None


def key_kind(key: object) -> str | None:
    """``RSA``, ``P-256``, ``P-384``, ``P-521``, ``Ed25519``, ``Ed448``, or ``None`` (unusable)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return _curve(key)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "Ed25519"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "Ed448"
    return None


def key_fits(key: PrivateKey | PublicKey, alg: str) -> bool:
    """True when ``alg`` may sign or verify with ``key`` (asymmetric algorithms only)."""
    kind = key_kind(key)
    if alg in RSA_ALGS:
        return kind == "RSA" and getattr(key, "key_size", 0) >= MIN_RSA_BITS
    if alg in EC_ALGS:
        return kind == EC_ALGS[alg]
    if alg in OKP_ALGS:
        return kind in ("Ed25519", "Ed448")
    return False


def default_algorithm(key: PrivateKey | PublicKey) -> str:
    """The algorithm a key signs with unless told otherwise: RS256, ES256/384/512, EdDSA."""
    kind = key_kind(key)
    for alg, curve in EC_ALGS.items():
        if kind == curve:
            return alg
    return "RS256" if kind == "RSA" else "EdDSA"


def _refuse_key(option: str, why: str) -> NoReturn:
    raise ConfigurationError(f"{option} {why}") from None


def load_private_key(material: object, *, option: str = "client_private_key") -> PrivateKey:
    """A signing key from PEM text or bytes (unencrypted), a JWK mapping or JSON, or a key object.

    Errors are ``ConfigurationError`` naming ``option`` and never quoting the
    material: a half-pasted key is still a secret.
    """
    jose_library(option)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    private_types = (
        rsa.RSAPrivateKey,
        ec.EllipticCurvePrivateKey,
        ed25519.Ed25519PrivateKey,
        ed448.Ed448PrivateKey,
    )
    key: object = material
    if isinstance(material, bytes | bytearray):
        try:
            material = bytes(material).decode("ascii")
        except UnicodeDecodeError:
            _refuse_key(option, "is not PEM text (it is binary; DER is not accepted).")
    if isinstance(material, str):
        text = material.strip()
        if text.startswith("{"):
            try:
                material = json.loads(text)
            except ValueError:
                _refuse_key(option, "looks like a JWK but is not valid JSON.")
        else:
            key = _load_pem(text, option, serialization)
    if isinstance(material, Mapping):
        key = _load_private_jwk(material, option)
    if not isinstance(key, private_types):
        if key_kind(key) is not None:
            _refuse_key(option, "is a public key; the client signs with its private key.")
        _refuse_key(
            option,
            "must be an unencrypted PEM private key (text or bytes), a private JWK (a "
            "mapping, or its JSON), or a cryptography private key object.",
        )
    if key_kind(key) is None:
        _refuse_key(option, "uses an elliptic curve other than P-256, P-384 or P-521.")
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        _refuse_key(option, f"is an RSA key of {key.key_size} bits; use {MIN_RSA_BITS} or more.")
    return key


def _load_pem(text: str, option: str, serialization: Any) -> object:
    if "-----BEGIN" not in text:
        _refuse_key(
            option,
            "is not PEM text (no -----BEGIN line). Pass the key itself, not a file name: "
            "read the file first, or use from_env's GENAUTH_CLIENT_PRIVATE_KEY_FILE.",
        )
    if "-----BEGIN ENCRYPTED" in text or "Proc-Type: 4,ENCRYPTED" in text:
        _refuse_key(option, "is encrypted; pass it decrypted (keep it in a secret store).")
    if "-----BEGIN PUBLIC KEY" in text or "-----BEGIN CERTIFICATE" in text:
        _refuse_key(
            option, "is a public key or certificate; the client signs with its private key."
        )
    try:
        return serialization.load_pem_private_key(text.encode("ascii"), password=None)
    except TypeError:  # cryptography's "password was not given but the key is encrypted"
        _refuse_key(option, "is encrypted; pass it decrypted (keep it in a secret store).")
    except (ValueError, UnicodeError):
        _refuse_key(option, "is not a readable PEM private key (PKCS#8, PKCS#1 or SEC1).")
    except Exception:  # cryptography raises its own kinds for unsupported key types
        _refuse_key(option, "is a key type genauth-guard cannot sign with.")


def _load_private_jwk(jwk: Mapping[str, Any], option: str) -> object:
    if "d" not in jwk:
        _refuse_key(option, "is a public JWK (no 'd'); the client signs with its private key.")
    try:
        return _jwk_to_key(jwk)
    except JoseError as exc:
        _refuse_key(option, f"is not a usable private JWK: {exc}.")


def _jwk_to_key(jwk: Mapping[str, Any]) -> object:
    """The key of a JWK (private if it has ``d``); ``JoseError`` with a message of our own."""
    jwt = jose_library("a JWK")
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    kty = jwk.get("kty")
    loaders: dict[str, Any] = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
    if not isinstance(kty, str) or kty not in loaders:
        raise JoseError("its kty is not RSA, EC or OKP")
    if kty in ("EC", "OKP") and jwk.get("crv") not in (
        "P-256",
        "P-384",
        "P-521",
        *("Ed25519", "Ed448"),
    ):
        raise JoseError("its crv is not P-256, P-384, P-521, Ed25519 or Ed448")
    try:
        return loaders[kty].from_jwk(dict(jwk))
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise JoseError(f"its {kty} members are missing or malformed") from None


def load_public_jwk(jwk: object) -> PublicKey:
    """The public key a JWK describes (a DPoP proof's ``jwk`` header, a JWKS entry).

    Refused (``JoseError``): anything but an RSA, EC or OKP public key on a
    supported curve, and any JWK carrying private members — a public key
    that travels with its secret half is a key nobody should trust.
    """
    if not isinstance(jwk, Mapping):
        raise JoseError("the JWK is not a JSON object")
    if _PRIVATE_MEMBERS & set(jwk):
        raise JoseError("the JWK carries private key members")
    key = _jwk_to_key(jwk)
    if key_kind(key) is None or hasattr(key, "private_bytes"):
        raise JoseError("the JWK is not a supported public key")
    return key  # type: ignore[return-value]


def public_jwk(key: PrivateKey | PublicKey) -> dict[str, Any]:
    """The public JWK of ``key`` (RFC 7517; the members RFC 7638 hashes, nothing private)."""
    jose_library("a public JWK")
    from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

    public = key.public_key() if hasattr(key, "private_bytes") else key  # type: ignore[union-attr]
    kind = key_kind(public)
    algorithm: Any = RSAAlgorithm if kind == "RSA" else OKPAlgorithm
    if kind in EC_ALGS.values():
        algorithm = ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(public, as_dict=True)
    return {name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public JWK, base64url (DPoP's ``jkt``).

    Only the required members, in lexicographic order, without whitespace:
    the same key always hashes the same, whatever else its JWK carries.
    """
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        raise JoseError("the JWK lacks the members its thumbprint is made of")
    canonical = json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True
    )
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


# ---------------------------------------------------------------- JWS


def sign_jws(
    claims: Mapping[str, Any],
    key: PrivateKey | bytes,
    alg: str,
    headers: Mapping[str, Any] | None = None,
) -> str:
    """A compact JWS of ``claims``; ``key`` is a private key, or the HMAC secret for HS*."""
    jwt = jose_library(f"signing with {alg}")
    token: str = jwt.encode(dict(claims), key, algorithm=alg, headers=dict(headers or {}))
    return token


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    def refuse_constant(name: str) -> NoReturn:
        raise ValueError(name)

    try:
        value = json.loads(data, parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JoseError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JoseError(f"the {what} is not a JSON object")
    return value


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, not yet verified: for choosing the key only.

    A compact JWE (five parts) is refused here, as is anything but three
    base64url parts with a JSON object header.
    """
    if not isinstance(token, str) or not token.isascii():
        raise JoseError("the JWT is not ASCII text")
    parts = token.split(".")
    if len(parts) == 5:
        raise JoseError("the JWT is encrypted (a JWE); only signed JWTs are accepted")
    if len(parts) != 3:
        raise JoseError("the JWT is not a compact JWS (three dot-separated parts)")
    return _json_object(b64url_decode(parts[0]), "JWT header")


@dataclass(frozen=True, slots=True)
class VerifiedJws:
    """A JWS whose signature checked out: its header and its claims (a JSON object)."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def check_header(header: Mapping[str, Any], algorithms: Sequence[str]) -> str:
    """The header's ``alg`` if it is one of ``algorithms``; else ``JoseError``.

    Also refuses what no caller here understands: ``crit`` (RFC 7515 4.1.11
    makes unknown extensions fatal), ``b64`` (RFC 7797), ``enc`` (a JWE) and
    a ``kid`` that is not a string.
    """
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms:
        shown = alg if isinstance(alg, str) and len(alg) <= 16 else type(alg).__name__
        raise JoseError(f"the JWT's alg {shown!r} is not one of {', '.join(algorithms)}")
    if "crit" in header:
        raise JoseError("the JWT has a crit header, and no extension is understood here")
    if "b64" in header:
        raise JoseError("the JWT uses an unencoded payload (b64)")
    if "enc" in header:
        raise JoseError("the JWT is encrypted (a JWE); only signed JWTs are accepted")
    if "kid" in header and not isinstance(header["kid"], str):
        raise JoseError("the JWT's kid is not a string")
    return alg


def verify_jws(token: str, key: PublicKey, algorithms: Sequence[str]) -> VerifiedJws:
    """The header and claims of ``token`` if ``key`` signed it with one of ``algorithms``.

    ``algorithms`` may only name asymmetric algorithms, and the header's
    ``alg`` must fit ``key``: a token cannot choose how it is verified.
    Claims (``exp``, ``aud``...) are the caller's to check. ``JoseError``
    for anything else.
    """
    unsafe = [alg for alg in algorithms if alg not in ASYMMETRIC_ALGS]
    if unsafe or not algorithms:
        raise ValueError(f"verify_jws verifies asymmetric algorithms only, not {unsafe}")
    jwt = jose_library("verifying a signed JWT")
    header = unverified_header(token)
    alg = check_header(header, algorithms)
    if not key_fits(key, alg):
        raise JoseError(f"the JWT's alg {alg} does not fit the key")
    try:
        decoded = jwt.api_jws.PyJWS().decode_complete(token, key, algorithms=[alg])
    except jwt.PyJWTError:
        raise JoseError("the JWT's signature does not verify") from None
    return VerifiedJws(header, _json_object(decoded["payload"], "JWT payload"))


__all__ = [
    "ASYMMETRIC_ALGS",
    "EXTRA",
    "HMAC_ALGS",
    "JoseError",
    "VerifiedJws",
    "check_header",
    "default_algorithm",
    "jose_library",
    "jwk_thumbprint",
    "key_fits",
    "key_kind",
    "load_private_key",
    "load_public_jwk",
    "public_jwk",
    "sign_jws",
    "unverified_header",
    "verify_jws",
]
