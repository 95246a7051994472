"""RFC 6750 section 3 answers: the ``WWW-Authenticate`` challenges and the JSON body.

Pure: both middlewares and the scope decorators turn a ``Rejection`` into
their framework's response.

A guard that takes DPoP-bound tokens (RFC 9449) offers two schemes, and
one header carries both challenges: ``Bearer realm="api", DPoP
algs="ES256 PS256"``. Which of them carries the details (error, scope,
resource metadata) follows RFC 9449 7.2: the scheme the request used when
it is known, every one when the request sent no credentials (no error
then) or when it is ambiguous (two credentials at once). ``Offer`` says
which schemes a guard offers and which one a request used;
``Rejection.offering`` applies it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

# RFC 6750 3: error_description and scope values use %x20-21 / %x23-5B / %x5D-7E.
_NOT_ALLOWED = re.compile(r"[^\x20\x21\x23-\x5b\x5d-\x7e]")


def quoted(value: str) -> str:
    """``value`` as a quoted-string RFC 6750 allows (no quote, backslash or control)."""
    return '"' + _NOT_ALLOWED.sub("'", value.replace('"', "'")) + '"'


def check_realm(realm: str) -> str:
    """``realm`` unchanged if it can be sent as-is, else ``ValueError``."""
    if not realm or _NOT_ALLOWED.search(realm):
        raise ValueError(
            f"realm={realm!r} must be non-empty printable ASCII without quotes or backslashes."
        )
    return realm


BEARER = "Bearer"
DPOP = "DPoP"


@dataclass(frozen=True, slots=True)
class Offer:
    """The challenges a guard answers with, and the scheme the request used (if known).

    ``schemes``: ``("Bearer",)``, ``("Bearer", "DPoP")`` or ``("DPoP",)``.
    ``used``: the scheme that carries an error; ``None`` when nobody can
    tell (every challenge carries it). ``dpop_algs``: the ``algs`` of the
    DPoP challenge, space-separated.
    """

    schemes: tuple[str, ...] = (BEARER,)
    used: str | None = None
    dpop_algs: str = ""

    def using(self, scheme: str | None) -> Offer:
        """This offer for a request that used ``scheme``."""
        return self if scheme == self.used else replace(self, used=scheme)


BEARER_ONLY = Offer()


@dataclass(frozen=True, slots=True)
class Rejection:
    """A request the guard answers itself, and why.

    ``offer`` (by default a lone ``Bearer`` challenge) names the challenges
    of the ``WWW-Authenticate`` header.
    """

    status: int
    error: str | None
    description: str
    scope: str | None = None
    retry_after: int | None = None
    resource_metadata: str | None = None
    offer: Offer = BEARER_ONLY

    def offering(self, offer: Offer) -> Rejection:
        """This rejection answered with ``offer``'s challenges."""
        return self if offer == self.offer else replace(self, offer=offer)

    def challenge(self, realm: str) -> str | None:
        """The ``WWW-Authenticate`` value, or ``None`` when none is sent (503)."""
        if self.status == 503:
            return None
        offer = self.offer
        # RFC 9449 7.2: the scheme the request used carries the details; none used, every one.
        carriers = [s for s in offer.schemes if offer.used in (None, s)] or offer.schemes
        challenges = []
        for scheme in offer.schemes:
            if scheme == DPOP:
                params = [f'algs="{offer.dpop_algs}"'] if offer.dpop_algs else []
            else:
                params = [f'realm="{realm}"']
            if scheme in carriers:
                if self.error:
                    params.append(f"error={quoted(self.error)}")
                    params.append(f"error_description={quoted(self.description)}")
                if self.scope:
                    params.append(f"scope={quoted(self.scope)}")
                if self.resource_metadata:  # RFC 9728 5.1: where to learn how to get a token
                    params.append(f"resource_metadata={quoted(self.resource_metadata)}")
            challenges.append(f"{scheme} {', '.join(params)}" if params else scheme)
        return ", ".join(challenges)

    def headers(self, realm: str) -> list[tuple[str, str]]:
        """Response headers, content type included."""
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        challenge = self.challenge(realm)
        if challenge is not None:
            headers.append(("WWW-Authenticate", challenge))
        if self.retry_after is not None:
            headers.append(("Retry-After", str(self.retry_after)))
        return headers

    def body(self) -> bytes:
        """The JSON body ``{"error", "error_description"}``."""
        error = self.error or "unauthorized"
        return json.dumps({"error": error, "error_description": self.description}).encode()


def pointing_to(rejection: Rejection, resource_metadata: str | None) -> Rejection:
    """``rejection`` whose challenge names the resource's metadata URL (RFC 9728 5.1).

    Every challenge does (400, 401, 403): a client that gets one learns
    where to read which authorization server and scopes to ask for. A 503
    has no challenge to carry it.
    """
    if resource_metadata is None or rejection.status == 503:
        return rejection
    return replace(rejection, resource_metadata=resource_metadata)


def missing_token() -> Rejection:
    return Rejection(
        401,
        None,
        "This resource needs an access token: send 'Authorization: Bearer <token>'.",
    )


def invalid_request(description: str) -> Rejection:
    return Rejection(400, "invalid_request", description)


def invalid_token(description: str = "") -> Rejection:
    return Rejection(
        401,
        "invalid_token",
        description
        or "The access token is not active (expired, revoked or unknown); get a new one.",
    )


def insufficient_scope(required: tuple[str, ...] | frozenset[str], match: str = "all") -> Rejection:
    """403 naming every scope the request needs (for ``match="any"``: every alternative)."""
    scope = " ".join(sorted(required))
    if match == "any" and len(required) > 1:
        description = f"The access token needs one of these scopes (any one suffices): {scope}."
    else:
        description = f"The access token lacks the scope this resource needs: {scope}."
    return Rejection(403, "insufficient_scope", description, scope=scope)


def unavailable(retry_after: int) -> Rejection:
    return Rejection(
        503,
        "temporarily_unavailable",
        "The authorization server could not check the access token; retry later.",
        retry_after=retry_after,
    )


def invalid_dpop_proof(description: str) -> Rejection:
    """RFC 9449 7.1: the ``DPoP`` proof is missing, malformed, or fails a check."""
    return Rejection(401, "invalid_dpop_proof", description)
