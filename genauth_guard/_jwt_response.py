"""RFC 9701 introspection answers: a JWT signed by the authorization server, checked here.

Pure and in two steps, because the key is chosen between them: ``read``
checks the answer's form (content type, a compact JWS, ``typ``, an
asymmetric ``alg``, no ``crit``) and names the key it wants (``kid``,
``alg``); the flow finds that key in the server's JWKS (``_jwks``);
``verify`` checks the signature with it and then the claims:

- ``iss`` equal to the expected issuer, ``aud`` naming our client id;
- ``iat`` present, not ahead of our clock beyond ``leeway``, and not older
  than ``MAX_ANSWER_AGE`` (a signed answer replayed later, after the token
  was revoked, must not pass for a fresh one); ``nbf``/``exp`` honoured;
- the token's claims inside ``token_introspection`` only: an envelope that
  carries token members itself (``active``, ``scope``, ``sub``...) is
  refused rather than guessed at.

The result is the ``TokenInfo`` of ``token_introspection`` (its
``claims`` is that object, not the envelope). Every failure is an
``InvalidIntrospectionResponse``: 503, never cached, never an accepted
request. Keys from the header (``jwk``, ``jku``, ``x5u``, ``x5c``) are
never looked at.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._jose import (
    ASYMMETRIC_ALGS,
    JoseError,
    check_header,
    jose_library,
    unverified_header,
    verify_jws,
)
from ._jwks import JwksCache
from ._protocol import error_for_status, token_info_from_claims
from ._settings import check_endpoint_url
from ._token_info import TokenInfo
from .errors import ConfigurationError, InvalidIntrospectionResponse

if TYPE_CHECKING:
    from ._jose import PublicKey

MEDIA_TYPE: Final = "application/token-introspection+jwt"
"""The ``Accept`` we send and the only ``Content-Type`` accepted back (RFC 9701 4)."""
TYP: Final = "token-introspection+jwt"
MAX_ANSWER_AGE: Final = 300
"""Seconds (plus ``leeway``) a signed answer's ``iat`` may lie in the past."""
_TOKEN_MEMBERS: Final = frozenset(
    {"active", "scope", "client_id", "username", "token_type", "sub", "cnf"}
)


def signed_answers(
    enabled: object,
    jwks_uri: object,
    issuer: object,
    server_issuer: str | None,
    *,
    allow_insecure_http: bool = False,
) -> tuple[JwksCache | None, str | None]:
    """The JWKS and the expected issuer for ``jwt_response=enabled``; ``(None, None)`` if off.

    ``issuer`` is ``jwt_response_issuer`` as given, ``server_issuer`` the
    authorization server's issuer (discovery, GenAuth), its default.
    Setting the JWT options without ``jwt_response=True`` is refused: it
    reads as if answers were verified while they are not.
    """
    if not isinstance(enabled, bool):
        raise ConfigurationError(f"jwt_response={enabled!r} must be True or False.")
    if not enabled:
        for name, value in (("jwks_uri", jwks_uri), ("jwt_response_issuer", issuer)):
            if value is not None:
                raise ConfigurationError(
                    f"{name} is set but jwt_response is off, so answers would not be "
                    "verified: pass jwt_response=True, or drop it."
                )
        return None, None
    jose_library("jwt_response=True")
    if jwks_uri is None:
        raise ConfigurationError(
            "jwt_response=True needs the server's signing keys: pass jwks_uri= (the "
            "jwks_uri of its discovery document; GenAuth: {app_host}/oidc/.well-known/"
            "jwks.json), or build the introspector with from_discovery() or from_genauth()."
        )
    if not isinstance(jwks_uri, str):
        raise ConfigurationError("jwks_uri must be a str (an https:// URL).")
    expected = issuer if issuer is not None else server_issuer
    if not isinstance(expected, str) or not expected:
        raise ConfigurationError(
            "jwt_response=True needs the issuer signed answers must name: pass "
            "jwt_response_issuer= (the authorization server's issuer identifier), or build "
            "the introspector with from_discovery() or from_genauth()."
        )
    uri = check_endpoint_url(jwks_uri, "jwks_uri", allow_insecure_http=allow_insecure_http)
    return JwksCache(uri), expected


def _refused(detail: str) -> InvalidIntrospectionResponse:
    return InvalidIntrospectionResponse(
        f"The signed introspection answer (RFC 9701) was refused: {detail}. The request "
        "failed closed; check the authorization server's signing setup and jwks_uri / "
        "jwt_response_issuer.",
        status_code=200,
    )


@dataclass(frozen=True, slots=True)
class SignedAnswer:
    """An answer of the right form, not yet verified: the JWT and the key it asks for."""

    token: str
    kid: str | None
    alg: str


def read(status: int, headers: Mapping[str, str], body: bytes) -> SignedAnswer:
    """The JWT of a 200 answer in RFC 9701's form, or the ``IntrospectionError`` it amounts to."""
    if status != 200:
        raise error_for_status("introspection", status, headers, body)
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != MEDIA_TYPE:
        shown = media_type[:60] or "none"
        raise _refused(f"its Content-Type is {shown!r}, not {MEDIA_TYPE}")
    try:
        token = body.decode("ascii").strip()
        header = unverified_header(token)
        alg = check_header(header, ASYMMETRIC_ALGS)
    except UnicodeDecodeError:
        raise _refused("the body is not a compact JWT") from None
    except JoseError as exc:
        raise _refused(str(exc)) from None
    typ = header.get("typ")
    typ = typ.lower().removeprefix("application/") if isinstance(typ, str) else None
    if typ != TYP:
        raise _refused(f"its typ header is not {TYP}")
    return SignedAnswer(token, header.get("kid"), alg)


def no_key(signed: SignedAnswer) -> InvalidIntrospectionResponse:
    """The failure for an answer signed by no key of the server's JWKS."""
    if signed.kid is None:
        return _refused(
            f"it names no kid, and the JWKS does not hold exactly one key for its alg {signed.alg}"
        )
    return _refused(f"no key of the JWKS has its kid and fits its alg {signed.alg}")


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refused(f"its '{name}' is not a NumericDate")
    try:
        if not math.isfinite(value):
            raise _refused(f"its '{name}' is not a NumericDate")
    except OverflowError:
        raise _refused(f"its '{name}' is not a NumericDate") from None
    return float(value)


def verify(
    signed: SignedAnswer,
    key: PublicKey,
    *,
    issuer: str,
    client_id: str,
    now: float,
    leeway: float = 0.0,
) -> TokenInfo:
    """The ``TokenInfo`` of a signed answer ``key`` verifies, whose claims are in order."""
    try:
        claims = verify_jws(signed.token, key, [signed.alg]).claims
    except JoseError as exc:
        raise _refused(str(exc)) from None
    if claims.get("iss") != issuer:
        raise _refused("its iss is not the expected issuer (jwt_response_issuer)")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise _refused("its aud does not name this client (client_id)")
    issued_at = _numeric_date(claims, "iat")
    if issued_at is None:
        raise _refused("it has no iat")
    if issued_at > now + leeway:
        raise _refused("its iat is in the future (check both clocks, or raise leeway)")
    if issued_at < now - MAX_ANSWER_AGE - leeway:
        raise _refused(f"it was issued more than {MAX_ANSWER_AGE} s ago (a replayed answer?)")
    expires = _numeric_date(claims, "exp")
    if expires is not None and now >= expires + leeway:
        raise _refused("it has expired (exp)")
    not_before = _numeric_date(claims, "nbf")
    if not_before is not None and now < not_before - leeway:
        raise _refused("it is not valid yet (nbf)")
    outside = sorted(_TOKEN_MEMBERS & set(claims))
    if outside:
        raise _refused(f"it has token claims outside token_introspection ({', '.join(outside)})")
    inner = claims.get("token_introspection")
    if not isinstance(inner, dict):
        raise _refused("it has no token_introspection object")
    return token_info_from_claims(inner, now, leeway)
