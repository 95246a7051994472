"""Sender-constrained tokens, checked once for both guards: DPoP (RFC 9449) and mTLS (RFC 8705).

``GuardPolicy`` holds one ``SenderConstraints`` and asks it three things:

1. before introspection, ``present``: how the token came (``Bearer`` or
   ``DPoP``), and for DPoP whether the proof passes its own checks
   (``_dpop``) - a bad proof costs no call to the authorization server;
2. after introspection (cached or not), ``binding``: whether the answer's
   ``cnf`` agrees with how the token came - a DPoP-bound token (``jkt``)
   only with a proof by that key, never as ``Bearer`` (RFC 9449 7.2, in
   every mode); an unbound token never as ``DPoP`` (7.1); a
   certificate-bound token (``x5t#S256``) only with that certificate;
3. then ``remember``: the proof's ``jti`` goes into the replay store
   (``_replay``) only now, once the proof and its binding are known good.

Nothing here is cached as a decision: every request runs all three.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from ._bearer import BEARER_AND_DPOP, BEARER_ONLY
from ._challenge import BEARER, DPOP, Offer, Rejection, invalid_dpop_proof, invalid_token
from ._dpop import (
    DEFAULT_ALGS,
    EXTRA,
    DPoPProof,
    ProofError,
    ProofVerifier,
    check_algs,
    jose_available,
)
from ._htu import public_base, request_url
from ._logging import REPEAT_INTERVAL, logger
from ._mtls import CertificateError, CertificateSource, check_header_name
from ._replay import (
    DEFAULT_MAXSIZE,
    AsyncReplayCache,
    LocalReplayStore,
    SyncReplayCache,
    replay_cache_of,
)
from ._request_view import RequestView
from ._shared import SKIP_FOR_SECONDS
from ._token_info import TokenInfo
from .errors import ConfigurationError

DPOP_MODES: Final = ("allowed", "required", "off")
MIN_FUTURE_SKEW: Final = 5.0
"""Seconds a proof's ``iat`` may lie ahead of the clock at least (``max(leeway, 5)``)."""
MAX_DPOP_MAX_AGE: Final = 3600
SHARED_RETRY_AFTER: Final = 1

_shared_warned = [-REPEAT_INTERVAL]


@dataclass(frozen=True, slots=True)
class Presented:
    """How a request presented its token: the scheme, and the DPoP proof that passed."""

    token: str
    scheme: str = BEARER
    proof: DPoPProof | None = None


def _max_age(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 1 <= value <= MAX_DPOP_MAX_AGE
    ):
        raise ConfigurationError(
            f"dpop_max_age={value!r} must be seconds between 1 and {MAX_DPOP_MAX_AGE} "
            "(default 300): how old a DPoP proof may be."
        )
    return float(value)


class SenderConstraints:
    """The DPoP and mTLS options of one guard, checked at start-up, and their checks.

    ``leeway``: the introspector's clock skew; a proof's ``iat`` may lie
    ``max(leeway, 5)`` seconds ahead. ``replay_cache``: the introspector's
    shared-cache port, used to remember proofs across processes if it can
    ``add_once`` (a coroutine when ``asynchronous``: the ASGI guard);
    ``shared_cache``: the introspector's, to say so when it cannot.
    """

    def __init__(
        self,
        *,
        dpop: str = "allowed",
        dpop_algs: Iterable[str] | str = DEFAULT_ALGS,
        dpop_max_age: float = 300,
        public_url: str | None = None,
        client_cert_header: str | None = None,
        leeway: float = 0.0,
        replay_cache: object = None,
        shared_cache: object = None,
        asynchronous: bool = False,
        replay_maxsize: int = DEFAULT_MAXSIZE,
    ) -> None:
        if dpop not in DPOP_MODES:
            raise ConfigurationError(
                f"dpop={dpop!r} must be 'allowed' (Bearer and DPoP), 'required' (DPoP-bound "
                "tokens only) or 'off' (Bearer only)."
            )
        self.mode = dpop
        self.algs = check_algs(dpop_algs)
        self.max_age = _max_age(dpop_max_age)
        self.future = max(float(leeway), MIN_FUTURE_SKEW)
        self.base = public_base(public_url)
        self.certificates = CertificateSource(check_header_name(client_cert_header))
        self.verifier: ProofVerifier | None = None
        if dpop != "off":
            if jose_available():
                self.verifier = ProofVerifier(self.algs, max_age=self.max_age, future=self.future)
            elif dpop == "required":
                raise ConfigurationError(
                    f"dpop='required' needs PyJWT with cryptography to check DPoP proofs: "
                    f"pip install '{EXTRA}'."
                )
            else:
                logger.warning(
                    "DPoP proofs cannot be checked without PyJWT and cryptography: requests "
                    "with 'Authorization: DPoP' are refused (bearer tokens work). Install "
                    "them with: pip install '%s'",
                    EXTRA,
                )
        self.schemes = BEARER_ONLY if dpop == "off" else BEARER_AND_DPOP
        offered = {"off": (BEARER,), "allowed": (BEARER, DPOP), "required": (DPOP,)}[dpop]
        algs = " ".join(self.algs)
        self.dpop_offer = Offer(offered, DPOP, algs)
        """The challenges for a request that used DPoP: its refusal is the DPoP challenge's."""
        if self.verifier is None and dpop == "allowed":
            offered = (BEARER,)  # DPoP is not offered while proofs cannot be checked
        self.offer = Offer(offered, None, algs)
        """The challenges for every other request."""
        self.window = self.max_age + self.future + 1.0
        self.local = LocalReplayStore(window=self.window, skew=self.future, maxsize=replay_maxsize)
        self.shared = replay_cache_of(replay_cache, asynchronous=asynchronous)
        self._shared_down_until = 0.0
        if shared_cache is not None and self.shared is None and dpop != "off":
            logger.warning(
                "the introspector's shared cache (%s) cannot remember DPoP proofs "
                "(its port has no add_once): each process detects replays on its own",
                type(shared_cache).__name__,
            )

    # ------------------------------------------------------------ before introspection

    def present(self, request: RequestView, scheme: str, token: str) -> Presented | Rejection:
        """How ``token`` came (``scheme``: ``bearer`` or ``dpop``), its proof checked."""
        if scheme == "bearer":
            if self.mode == "required":  # another scheme: as if no token came (RFC 6750 3.1)
                return Rejection(
                    401,
                    None,
                    "This resource needs a DPoP-bound access token: send 'Authorization: "
                    "DPoP <token>' and a 'DPoP' proof header (RFC 9449).",
                )
            return Presented(token)
        if self.verifier is None:
            return invalid_dpop_proof(
                "This server cannot check DPoP proofs (its JOSE library is not installed); "
                "send a bearer token, or ask the API's operator."
            )
        values = request.headers("dpop")
        if not values:
            return invalid_dpop_proof(
                "'Authorization: DPoP' needs a 'DPoP' header with a proof (RFC 9449 7.1)."
            )
        if len(values) > 1 or "," in values[0]:
            return invalid_dpop_proof("The request has more than one DPoP header; send one proof.")
        try:
            proof = self.verifier.verify(
                values[0].strip(" \t"),
                method=request.method,
                url=request_url(request, self.base),
                token=token,
                now=time.time(),
            )
        except ProofError as exc:
            logger.debug("DPoP proof refused: %s", exc)
            return invalid_dpop_proof(str(exc))
        except Exception as exc:  # fail closed, never a 500, whatever the proof holds
            logger.debug("DPoP proof could not be checked (%s)", type(exc).__name__)
            return invalid_dpop_proof("The DPoP proof could not be checked; make a new one.")
        return Presented(token, DPOP, proof)

    # ------------------------------------------------------------ after introspection

    def binding(
        self, info: TokenInfo, request: RequestView | None, presented: Presented
    ) -> Rejection | None:
        """The refusal when the answer's ``cnf`` disagrees with how the token came, or ``None``."""
        cnf = info.cnf
        jkt = cnf.get("jkt") if cnf is not None else None
        proof = presented.proof
        if proof is None and jkt is not None:
            return invalid_token(
                "This access token is bound to a DPoP key: send it as 'Authorization: DPoP "
                "<token>' with a DPoP proof, never as a bearer token (RFC 9449 7.2)."
            )
        if proof is not None and jkt is None:
            if self.mode == "required":
                return invalid_token(
                    "This resource accepts only DPoP-bound access tokens; this one is not "
                    "bound to a key (its introspection answer has no cnf.jkt)."
                )
            return invalid_token(
                "This access token is not bound to a DPoP key: send it as 'Authorization: "
                "Bearer <token>' (RFC 9449 7.1)."
            )
        if proof is not None and not hmac.compare_digest(
            str(jkt).encode("utf-8", "surrogatepass"), proof.jkt.encode("ascii")
        ):
            return invalid_token(
                "The DPoP proof is signed with another key than the one this access token "
                "is bound to (cnf.jkt)."
            )
        x5t = cnf.get("x5t#S256") if cnf is not None else None
        return None if x5t is None else self._certificate_binding(str(x5t), request)

    def _certificate_binding(self, x5t: str, request: RequestView | None) -> Rejection | None:
        try:
            presented = None if request is None else self.certificates.thumbprint(request)
        except CertificateError as exc:
            return invalid_token(
                f"The client certificate could not be read ({exc}); this access token is "
                "bound to a certificate (RFC 8705)."
            )
        if presented is None:
            return invalid_token(
                "This access token is bound to a client certificate: send the request over "
                "mutual TLS with that certificate (RFC 8705)."
            )
        if not hmac.compare_digest(x5t.encode("utf-8", "surrogatepass"), presented.encode("ascii")):
            return invalid_token(
                "The client certificate is not the one this access token is bound to."
            )
        return None

    # ------------------------------------------------------------ replays

    def remember(self, presented: Presented) -> Rejection | None:
        """Record the proof's ``jti`` in this process; a refusal if it was seen (or too old)."""
        if presented.proof is None:
            return None
        why = self.local.add(presented.proof)
        return None if why is None else invalid_dpop_proof(why)

    async def aremember_shared(self, presented: Presented) -> Rejection | None:
        """Record the proof in the shared cache (async guard); a refusal if another saw it."""
        if presented.proof is None or self.shared is None:
            return None
        if time.monotonic() < self._shared_down_until:
            return self._shared_unavailable()
        try:
            shared: AsyncReplayCache = self.shared  # type: ignore[assignment]
            fresh = await shared.add_once(presented.proof.replay_key, self.window)
        except Exception as exc:
            return self._shared_failed(exc)
        return None if fresh else _replayed()

    def remember_shared(self, presented: Presented) -> Rejection | None:
        """``aremember_shared`` for the WSGI guard."""
        if presented.proof is None or self.shared is None:
            return None
        if time.monotonic() < self._shared_down_until:
            return self._shared_unavailable()
        try:
            shared: SyncReplayCache = self.shared  # type: ignore[assignment]
            fresh = shared.add_once(presented.proof.replay_key, self.window)
        except Exception as exc:
            return self._shared_failed(exc)
        return None if fresh else _replayed()

    def _shared_failed(self, exc: Exception) -> Rejection:
        """503: a replay on another worker cannot be ruled out (WARNING once a minute).

        The shared cache is then not asked for ``SKIP_FOR_SECONDS`` (one
        probe after): a hanging Redis costs one timeout, not one per request.
        """
        now = time.monotonic()
        self._shared_down_until = now + SKIP_FOR_SECONDS
        loud = now - _shared_warned[0] >= REPEAT_INTERVAL
        if loud:
            _shared_warned[0] = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "the shared cache could not record a DPoP proof (%s): DPoP requests are refused "
            "(503) until it works again, since a replay on another worker cannot be ruled out",
            type(exc).__name__,
        )
        return self._shared_unavailable()

    def _shared_unavailable(self) -> Rejection:
        return Rejection(
            503,
            "temporarily_unavailable",
            "The server could not check the DPoP proof against replays; retry with a new proof.",
            retry_after=SHARED_RETRY_AFTER,
        )


def _replayed() -> Rejection:
    return invalid_dpop_proof(
        "The DPoP proof was already used; make a new proof for every request."
    )
