"""DPoP proofs (RFC 9449 4.3): parsing and every check a proof makes on its own.

A proof is a JWS the client signs with the key its token is bound to. This
module checks the proof against the request (``htm``, ``htu``), the clock
(``iat``), and the token (``ath``), verifies its signature with the public
key in its own ``jwk`` header, and hands back that key's RFC 7638
thumbprint and the ``jti``: the caller compares the thumbprint with the
token's ``cnf.jkt`` and records the ``jti`` against replays (``_replay``).

The JOSE library is PyJWT with ``cryptography`` (the ``genauth-guard[jose]``
extra), imported lazily by ``jose_library``: ``import genauth_guard`` works
without it. Only its key loaders and signature primitives are used; the
rules are ours, and every refusal is a ``ProofError`` whose message says
what was wrong without quoting the proof, the token or the key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final, NoReturn

from ._htu import normalize_url
from .errors import ConfigurationError

EXTRA: Final = "genauth-guard[jose]"
"""The extra that brings the JOSE library (PyJWT with cryptography)."""

KEY_TYPES: Final[Mapping[str, str]] = {
    **dict.fromkeys(("ES256", "ES384", "ES512"), "EC"),
    **dict.fromkeys(("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"), "RSA"),
    "EdDSA": "OKP",
}
"""Every proof algorithm this module can check, and the key type (``kty``) it signs with."""
DEFAULT_ALGS: Final = ("ES256", "RS256", "PS256", "EdDSA")
_CURVES: Final = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
MIN_RSA_BITS: Final = 2048
MAX_PROOF_LENGTH: Final = 8192
"""Longest ``DPoP`` header read: an RSA-4096 proof is about 2,000 characters."""
MAX_JTI_LENGTH: Final = 512
TYPES: Final = frozenset({"dpop+jwt", "application/dpop+jwt"})
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
THUMBPRINT_MEMBERS: Final[Mapping[str, tuple[str, ...]]] = {
    "RSA": ("e", "kty", "n"),
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
}
"""RFC 7638 3.2: the members a thumbprint hashes, in lexicographic order."""
_TOKEN68: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_HEADER_CACHE_SIZE: Final = 256
"""Proof headers kept once checked: a client sends the same header (typ, alg, jwk) each time."""


class ProofError(ValueError):
    """A DPoP proof that fails a check; the message is safe to send and to log."""


def _refuse(message: str) -> NoReturn:
    raise ProofError(message)


def check_algs(algs: Iterable[str] | str) -> tuple[str, ...]:
    """The ``dpop_algs`` option, checked; ``ConfigurationError`` naming what is wrong.

    ``none`` and symmetric algorithms prove nothing about a key (RFC 9449 4.2
    forbids them); an unknown name is probably a typo.
    """
    names = tuple(algs.split() if isinstance(algs, str) else algs)
    if not names:
        raise ConfigurationError(
            f"dpop_algs needs at least one algorithm, e.g. {' '.join(DEFAULT_ALGS)}; "
            "use dpop='off' to refuse DPoP."
        )
    for name in names:
        if not isinstance(name, str):
            raise ConfigurationError(f"dpop_algs entries must be algorithm names, got {name!r}.")
        if name.lower() == "none":
            raise ConfigurationError("dpop_algs may not name 'none': a DPoP proof must be signed.")
        if name.upper().startswith("HS"):
            raise ConfigurationError(
                f"dpop_algs may not name {name!r}: a symmetric (MAC) algorithm proves "
                "nothing about the client's key (RFC 9449 4.2)."
            )
        if name not in KEY_TYPES:
            raise ConfigurationError(
                f"dpop_algs names {name!r}, which genauth-guard does not check; choose "
                f"from {', '.join(KEY_TYPES)}."
            )
    return tuple(dict.fromkeys(names))


def jose_library() -> ModuleType | None:
    """PyJWT (``jwt``) if it is installed with ``cryptography``, else ``None``."""
    try:
        import jwt
        from jwt.algorithms import has_crypto
    except ImportError:
        return None
    return jwt if has_crypto else None


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str, what: str) -> bytes:
    """The bytes of unpadded, canonical base64url ``text``, or a ``ProofError``."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        _refuse(f"The DPoP proof's {what} is not base64url.")
    if b64url(data) != text:  # padding, other alphabets, stray bits: one encoding per value
        _refuse(f"The DPoP proof's {what} is not canonical base64url.")
    return data


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 4.2): base64url of the SHA-256 of the token's ASCII."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


def _canonical_jwk(jwk: Mapping[str, Any]) -> str:
    kty = jwk.get("kty")
    members = THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not all(isinstance(jwk.get(name), str) for name in members):
        _refuse("The DPoP proof's jwk is not a complete RSA, EC or OKP public key.")
    return json.dumps(
        {name: jwk[name] for name in members}, separators=(",", ":"), ensure_ascii=False
    )


def replay_key(jkt: str, jti: str) -> bytes:
    """The digest a proof is remembered under: its ``jti`` and its key, never the proof."""
    material = "\0".join(("genauth-guard/dpop-jti/1", jkt, jti))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).digest()


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):  # which duplicate wins differs between parsers
        raise ValueError("duplicate member")
    return result


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data, object_pairs_hook=_unique_members, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        _refuse(f"The DPoP proof's {what} is not JSON (or repeats a member).")
    if not isinstance(value, dict):
        _refuse(f"The DPoP proof's {what} is not a JSON object.")
    return value


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value) if math.isfinite(value) else None
    except OverflowError:
        return None


@dataclass(frozen=True, slots=True)
class DPoPProof:
    """A proof that passed its own checks: its key's thumbprint, ``jti`` and ``iat``."""

    jkt: str
    jti: str
    iat: float

    @property
    def replay_key(self) -> bytes:
        return replay_key(self.jkt, self.jti)


class ProofVerifier:
    """Checks DPoP proofs for one guard: its algorithms and its ``iat`` window.

    ``max_age``: seconds ``iat`` may lie in the past; ``future``: seconds it
    may lie ahead (clock skew). Build it only when ``jose_library()`` found
    the JOSE library.
    """

    def __init__(self, algs: tuple[str, ...], *, max_age: float, future: float) -> None:
        from jwt.algorithms import get_default_algorithms

        available = get_default_algorithms()
        self.algs = algs
        self.max_age = max_age
        self.future = future
        self._algorithms = {name: available[name] for name in algs}
        self._headers: OrderedDict[str, tuple[str, Any, str]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(
        self, value: str, *, method: str, url: str | None, token: str, now: float
    ) -> DPoPProof:
        """The proof in ``value`` (one ``DPoP`` header) if it passes every check of its own.

        ``url`` is the request's normalised URL (``_htu.request_url``);
        ``token`` the access token sent with it. Raises ``ProofError``.
        """
        if len(value) > MAX_PROOF_LENGTH:
            _refuse(f"The DPoP proof is longer than {MAX_PROOF_LENGTH} characters.")
        parts = value.split(".")
        if not _TOKEN68.fullmatch(value) or len(parts) != 3:
            _refuse("The DPoP header is not one JWT (a compact JWS of three parts).")
        alg, key, jkt = self._header(parts[0])
        claims = _json_object(_b64url_decode(parts[1], "payload"), "payload")
        jti, iat = self._check_claims(claims, method, url, token, now)
        signature = _b64url_decode(parts[2], "signature")
        signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
        if not self._algorithms[alg].verify(signing_input, key, signature):
            _refuse("The DPoP proof's signature does not verify with its jwk.")
        return DPoPProof(jkt, jti, iat)

    def _header(self, encoded: str) -> tuple[str, Any, str]:
        """``(alg, public key, thumbprint)`` of an encoded JOSE header that passes its checks.

        Kept by the encoded header (a few hundred): a client signs every
        proof with the same ``typ``, ``alg`` and ``jwk``, so each is parsed
        and its key loaded once. Only headers that passed are kept.
        """
        with self._lock:
            cached = self._headers.get(encoded)
            if cached is not None:
                self._headers.move_to_end(encoded)
                return cached
        header = _json_object(_b64url_decode(encoded, "header"), "header")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in TYPES:
            _refuse("The DPoP proof's typ is not dpop+jwt.")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            _refuse(f"The DPoP proof's alg is not one of {' '.join(self.algs)}.")
        if "crit" in header or "b64" in header:
            _refuse("The DPoP proof uses a JWS extension (crit, b64) this server does not know.")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            _refuse("The DPoP proof has no jwk header with the client's public key.")
        if not PRIVATE_MEMBERS.isdisjoint(jwk):
            _refuse("The DPoP proof's jwk carries a private key; send the public key only.")
        key, jkt = self._public_key(alg, jwk)
        with self._lock:
            self._headers[encoded] = (alg, key, jkt)
            if len(self._headers) > _HEADER_CACHE_SIZE:
                self._headers.popitem(last=False)
        return alg, key, jkt

    def _check_claims(
        self, claims: Mapping[str, Any], method: str, url: str | None, token: str, now: float
    ) -> tuple[str, float]:
        jti, htm, htu = claims.get("jti"), claims.get("htm"), claims.get("htu")
        iat = _number(claims.get("iat"))
        if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI_LENGTH:
            _refuse(f"The DPoP proof needs a jti: a unique string of 1 to {MAX_JTI_LENGTH}.")
        if not isinstance(htm, str) or not isinstance(htu, str) or iat is None:
            _refuse("The DPoP proof needs htm and htu strings and a numeric iat.")
        if htm != method:
            _refuse("The DPoP proof's htm is not this request's method.")
        if url is None or normalize_url(htu) != url:
            _refuse("The DPoP proof's htu is not this request's URL (scheme, host and path).")
        if iat < now - self.max_age:
            _refuse(f"The DPoP proof is older than {self.max_age:g} seconds; make a fresh one.")
        if iat > now + self.future:
            _refuse("The DPoP proof's iat lies in the future; check the client's clock.")
        if claims.get("ath") != access_token_hash(token):
            _refuse("The DPoP proof's ath is not the hash of the access token it came with.")
        return jti, iat

    def _public_key(self, alg: str, jwk: Mapping[str, Any]) -> tuple[Any, str]:
        """The key ``jwk`` describes if ``alg`` may use it, and its RFC 7638 thumbprint."""
        canonical = _canonical_jwk(jwk)
        if jwk["kty"] != KEY_TYPES[alg]:
            _refuse(f"The DPoP proof's jwk is not a {KEY_TYPES[alg]} key, as {alg} needs.")
        try:
            key = self._algorithms[alg].from_jwk(json.loads(canonical))
        except Exception:  # the library's many kinds; its messages may quote the key
            _refuse("The DPoP proof's jwk is not a valid public key.")
        if not _fits(key, alg):
            _refuse(f"The DPoP proof's jwk cannot sign {alg} (curve or key size).")
        thumbprint = b64url(hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).digest())
        return key, thumbprint


def _fits(key: Any, alg: str) -> bool:
    """A public key of the size or curve ``alg`` needs (RFC 7518 3.3, 3.4; RFC 8037)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    if alg in _CURVES:
        return isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == _CURVES[alg]
    if alg == "EdDSA":
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS
