"""DPoP proofs (RFC 9449 4.3): parsing and every check a proof makes on its own.

A proof is a JWS the client signs with the key its token is bound to. This
module checks the proof against the request (``htm``, ``htu``), the clock
(``iat``), and the token (``ath``), verifies its signature with the public
key in its own ``jwk`` header, and hands back that key's RFC 7638
thumbprint and the ``jti``: the caller compares the thumbprint with the
token's ``cnf.jkt`` and records the ``jti`` against replays (``_replay``).

Keys, thumbprints and the algorithm rules come from ``_jose``, the
project's one door to the JOSE library (PyJWT with ``cryptography``, the
``genauth-guard[jose]`` extra, imported lazily: ``import genauth_guard``
works without it). Every refusal is a ``ProofError`` whose message says
what was wrong without quoting the proof, the token or the key.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from ._htu import normalize_url
from ._jose import (
    ASYMMETRIC_ALGS,
    EXTRA,
    HMAC_ALGS,
    JoseError,
    b64url,
    b64url_decode,
    check_header,
    jose_library,
    jwk_thumbprint,
    key_fits,
    load_public_jwk,
)
from .errors import ConfigurationError

__all__ = [
    "DEFAULT_ALGS",
    "EXTRA",
    "DPoPProof",
    "ProofError",
    "ProofVerifier",
    "access_token_hash",
    "check_algs",
    "jose_available",
    "replay_key",
]

DEFAULT_ALGS: Final = ("ES256", "RS256", "PS256", "EdDSA")
MAX_PROOF_LENGTH: Final = 8192
"""Longest ``DPoP`` header read: an RSA-4096 proof is about 2,000 characters."""
MAX_JTI_LENGTH: Final = 512
TYPES: Final = frozenset({"dpop+jwt", "application/dpop+jwt"})
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
        if name in HMAC_ALGS or name.upper().startswith("HS"):
            raise ConfigurationError(
                f"dpop_algs may not name {name!r}: a symmetric (MAC) algorithm proves "
                "nothing about the client's key (RFC 9449 4.2)."
            )
        if name not in ASYMMETRIC_ALGS:
            raise ConfigurationError(
                f"dpop_algs names {name!r}, which genauth-guard does not check; choose "
                f"from {', '.join(ASYMMETRIC_ALGS)}."
            )
    return tuple(dict.fromkeys(names))


def jose_available() -> bool:
    """Whether PyJWT with ``cryptography`` is installed (the ``jose`` extra)."""
    try:
        jose_library("checking DPoP proofs")
    except ConfigurationError:
        return False
    return True


def _decode(text: str, what: str) -> bytes:
    """The bytes of one part of the proof (canonical base64url), or a ``ProofError``."""
    try:
        return b64url_decode(text)
    except JoseError:
        _refuse(f"The DPoP proof's {what} is not canonical base64url.")


def access_token_hash(token: str) -> str:
    """``ath`` (RFC 9449 4.2): base64url of the SHA-256 of the token's ASCII."""
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


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
    may lie ahead (clock skew). Build it only when ``jose_available()``.
    """

    def __init__(self, algs: tuple[str, ...], *, max_age: float, future: float) -> None:
        jose_library("checking DPoP proofs")
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
        claims = _json_object(_decode(parts[1], "payload"), "payload")
        jti, iat = self._check_claims(claims, method, url, token, now)
        signature = _decode(parts[2], "signature")
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
        header = _json_object(_decode(encoded, "header"), "header")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in TYPES:
            _refuse("The DPoP proof's typ is not dpop+jwt.")
        try:
            alg = check_header(header, self.algs)  # alg allowed; no crit, b64, enc
        except JoseError as exc:
            _refuse(f"The DPoP proof's header is refused: {exc}.")
        jwk = header.get("jwk")
        if not isinstance(jwk, dict):
            _refuse("The DPoP proof has no jwk header with the client's public key.")
        try:
            key = load_public_jwk(jwk)  # refuses private members
            jkt = jwk_thumbprint(jwk)
        except JoseError as exc:
            _refuse(f"The DPoP proof's jwk is not a usable public key: {exc}.")
        except Exception:  # the library's own kinds, for members of odd types
            _refuse("The DPoP proof's jwk is not a usable public key.")
        if not key_fits(key, alg):
            _refuse(f"The DPoP proof's jwk cannot sign {alg} (key type, curve or size).")
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
