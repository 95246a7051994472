"""RFC 7662 introspection and RFC 7009 revocation, written once with no I/O.

Drivers (the async and sync introspectors) build a request here, send it
however they like, and hand the status, headers and body back here to be
turned into a ``TokenInfo`` or an error. Everything an authorization server
can get wrong is decided in this module, so both drivers fail the same way.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
import zlib
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any, NoReturn
from urllib.parse import urlencode

import httpx

from ._claims import compact_claims, scope_set, shared_tuple
from ._client_auth import ClientAuthentication
from ._token_info import INACTIVE, TokenInfo
from .errors import (
    AuthorizationServerUnavailable,
    ClientAuthenticationError,
    IntrospectionError,
    IntrospectionRequestRejected,
    InvalidIntrospectionResponse,
    RevocationError,
)

DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024
"""Largest introspection answer read; a longer one is a failure (no unbounded buffering)."""

MAX_RETRY_AFTER = 3600.0

_ERROR_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def _client_auth_hint(what: str) -> str:
    return (
        "check client_id/client_secret (GenAuth: app_id/secret) and that the auth method "
        f"(GenAuth: {what}_endpoint_auth_method) is the one the application is set up for"
    )


def token_request(
    url: str,
    auth: ClientAuthentication,
    token: str,
    token_type_hint: str | None = "access_token",
    *,
    accept: str = "application/json",
) -> httpx.Request:
    """The POST that asks about (RFC 7662 2.1) or revokes (RFC 7009 2.1) ``token``.

    Both endpoints take the same form: ``token``, an optional
    ``token_type_hint``, and the client authentication (built afresh for
    each request: a signed assertion is never sent twice).
    """
    auth_headers, auth_fields = auth.apply(url)
    fields = {"token": token}
    if token_type_hint:
        fields["token_type_hint"] = token_type_hint
    headers = {
        "Accept": accept,
        "Accept-Encoding": "identity",
        "Content-Type": "application/x-www-form-urlencoded",
        **auth_headers,
    }
    content = urlencode({**fields, **auth_fields})
    return httpx.Request("POST", _parsed_url(url), headers=headers, content=content)


@functools.lru_cache(maxsize=64)
def _parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx's parser costs more than the rest of the request."""
    return httpx.URL(url)


def userinfo_request(url: str, token: str) -> httpx.Request:
    """The profile request of OIDC Core 5.3: POST with the access token as the bearer.

    POST, not GET: GenAuth's ``/me`` takes POST, and OIDC servers must take both.
    """
    headers = {
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "Authorization": f"Bearer {token}",
    }
    return httpx.Request("POST", url, headers=headers)


def parse_userinfo_response(
    status: int, headers: Mapping[str, str], body: bytes, expected_sub: str | None
) -> Mapping[str, Any]:
    """The profile as a read-only mapping, or the ``IntrospectionError`` it amounts to.

    A profile of another subject than the token's is refused: a proxy or a
    server mix-up must not hand one user's profile to another.
    """
    if status != 200:
        raise error_for_status("userinfo", status, headers, body)
    data = load_json_object(body)
    if data is None:
        raise InvalidIntrospectionResponse(
            "The userinfo answer is not a JSON object; check userinfo_endpoint.", status_code=200
        )
    sub = data.get("sub")
    if not isinstance(sub, str) or (expected_sub is not None and sub != expected_sub):
        raise InvalidIntrospectionResponse(
            "The userinfo answer is about another subject than the token (or names none); "
            "check that userinfo_endpoint belongs to the same authorization server.",
            status_code=200,
        )
    return MappingProxyType(data)


# ---------------------------------------------------------------- answers


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def load_json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²": str.isdigit knows Unicode digits
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    delay = when - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


def _error_code(body: bytes) -> str | None:
    """The RFC 6749 ``error`` code of an error answer, if it is a plain code.

    ``error_description`` is never repeated: a server may echo the token in it.
    """
    data = load_json_object(body)
    code = data.get("error") if data else None
    return code if isinstance(code, str) and _ERROR_CODE.fullmatch(code) else None


def error_for_status(
    what: str, status: int, headers: Mapping[str, str], body: bytes
) -> IntrospectionError:
    """The exception for a non-200 answer from the ``what`` endpoint."""
    code = _error_code(body)
    said = f"HTTP {status}" + (f" {code}" if code else "")
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status == 401 or code == "invalid_client":
        return ClientAuthenticationError(
            f"The authorization server rejected the client credentials at the {what} "
            f"endpoint ({said}): {_client_auth_hint(what)}.",
            status_code=status,
        )
    if status == 429 or status >= 500:
        return AuthorizationServerUnavailable(
            f"The authorization server's {what} endpoint is unavailable ({said}); retry later.",
            status_code=status,
            retry_after=retry_after,
            server_wide=status == 429,
        )
    if 300 <= status < 400:
        return IntrospectionRequestRejected(
            f"The {what} endpoint answered with a redirect ({said}); configure the "
            "endpoint's final https:// URL (redirects are not followed with credentials).",
            status_code=status,
        )
    if 400 <= status < 500:
        return IntrospectionRequestRejected(
            f"The authorization server refused the {what} request ({said}); check the "
            "endpoint URL and the client's permissions for it.",
            status_code=status,
        )
    return InvalidIntrospectionResponse(
        f"The {what} endpoint answered {said}, not 200; check the endpoint URL.",
        status_code=status,
    )


def _malformed(detail: str) -> InvalidIntrospectionResponse:
    return InvalidIntrospectionResponse(
        f"The introspection answer is not a valid RFC 7662 response: {detail}; check "
        "that the endpoint URL points at the authorization server's introspection endpoint.",
        status_code=200,
    )


def _optional_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None or isinstance(value, str):
        return value
    raise _malformed(f"'{name}' is not a string")


def _finite(value: int | float) -> bool:
    """True for a number a float can hold (an int past 1e308 overflows it)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _numeric_date(data: Mapping[str, Any], name: str, *, round_up: bool = False) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not _finite(value):
        raise _malformed(f"'{name}' is not a NumericDate (seconds since the epoch)")
    # Round towards the safe side: expiry earlier, not-before later.
    return math.ceil(value) if round_up else math.floor(value)


def _string_list(data: Mapping[str, Any], name: str, *, split: bool) -> tuple[str, ...]:
    value = data.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split()) if split else (value,)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise _malformed(f"'{name}' is neither a string nor a list of strings")


CONFIRMATION_MEMBERS = ("jkt", "x5t#S256")
"""``cnf`` members the guards check (RFC 9449 6.1, RFC 8705 3.1): strings when present."""


def _check_confirmation(data: Mapping[str, Any]) -> None:
    """Refuse a ``cnf`` the guards could misread: not an object, or a binding not a string.

    A bound token must never pass as a bearer token because its binding
    came in an odd shape: such an answer is no answer (503), like any
    malformed one.
    """
    if "cnf" not in data:
        return
    cnf = data["cnf"]
    if not isinstance(cnf, dict):
        raise _malformed("'cnf' is not a JSON object")
    for name in CONFIRMATION_MEMBERS:
        if name in cnf and not isinstance(cnf[name], str):
            raise _malformed(f"'cnf.{name}' is not a string")


def token_info_from_claims(data: Mapping[str, Any], now: float, leeway: float = 0.0) -> TokenInfo:
    """``TokenInfo`` from a decoded answer; ``INACTIVE`` unless it is usable at ``now``.

    Only the JSON boolean ``true`` is active (not ``"true"``, not ``1``). An
    active answer whose ``exp`` has passed, or whose ``nbf`` is still ahead,
    is inactive: the server's clock or cache may lag.
    """
    info = claims_answer(data)
    return info if not info.active or info.is_usable_at(now, leeway) else INACTIVE


def claims_answer(data: Mapping[str, Any]) -> TokenInfo:
    """``TokenInfo`` from a decoded answer, without the clock (``InvalidIntrospectionResponse``).

    For answers read back from a shared cache: whoever uses one re-checks
    ``exp`` and ``nbf`` at that moment.
    """
    active = data.get("active")
    if not isinstance(active, bool):
        raise _malformed("'active' is missing or not a JSON boolean")
    if not active:
        return INACTIVE
    _check_confirmation(data)  # read back from a shared cache too: a binding survives intact
    claims = compact_claims(data)  # names and common values shared (``_claims``)
    scope = claims.get("scope")
    return TokenInfo(
        active=True,
        sub=_optional_str(claims, "sub"),
        scopes=(
            scope_set(scope)
            if type(scope) is str
            else frozenset(_string_list(claims, "scope", split=True))
        ),
        client_id=_optional_str(claims, "client_id"),
        username=_optional_str(claims, "username"),
        token_type=_optional_str(claims, "token_type"),
        exp=_numeric_date(claims, "exp"),
        iat=_numeric_date(claims, "iat"),
        nbf=_numeric_date(claims, "nbf", round_up=True),
        aud=shared_tuple(_string_list(claims, "aud", split=False)),
        iss=_optional_str(claims, "iss"),
        jti=_optional_str(claims, "jti"),
        claims=claims,
    )


def parse_introspection_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    leeway: float = 0.0,
) -> TokenInfo:
    """The ``TokenInfo`` of an introspection answer, or the ``IntrospectionError`` it amounts to."""
    if status != 200:
        raise error_for_status("introspection", status, headers, body)
    data = load_json_object(body)
    if data is None:
        raise _malformed("the body is not a JSON object")
    return token_info_from_claims(data, time.time() if now is None else now, leeway)


def check_revocation_response(status: int, headers: Mapping[str, str], body: bytes) -> None:
    """Raise ``RevocationError`` unless the server confirmed the revocation (RFC 7009 2.2)."""
    if status == 200:
        return
    error = error_for_status("revocation", status, headers, body)
    raise RevocationError(str(error), status_code=status) from error


def body_too_large(limit: int) -> InvalidIntrospectionResponse:
    """The failure for an answer longer than ``limit`` bytes."""
    return InvalidIntrospectionResponse(
        f"The authorization server's answer is larger than {limit} bytes; an introspection "
        "answer is a small JSON object, so the endpoint URL is probably wrong.",
        status_code=None,
    )


class BoundedBody:
    """Collects an answer's raw bytes, decoding and bounding them as they arrive.

    The bound holds for the decoded size: a server that ignores our
    ``Accept-Encoding: identity`` and sends a small gzip bomb is cut off
    after ``limit`` decoded bytes, not after inflating it whole. An answer
    with a status other than 200 is only read for its error code, so it is
    cut at the limit without failing (``feed`` returns ``True``: stop
    reading); a 200 answer over the limit raises ``body_too_large``.
    """

    def __init__(self, status: int, headers: Mapping[str, str], limit: int) -> None:
        self.limit = limit
        self.truncate = status != 200
        self._body = bytearray()
        self._decoder: Any = None
        length = headers.get("content-length", "")
        if not self.truncate and length.isdigit() and int(length) > limit:
            raise body_too_large(limit)
        coding = headers.get("content-encoding", "identity").strip().lower()
        if coding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif coding == "deflate":
            self._decoder = zlib.decompressobj()
        elif coding not in ("identity", "") and not self.truncate:
            raise _malformed(f"it is sent with Content-Encoding {coding[:32]!r}, not identity")

    @classmethod
    def for_response(cls, response: httpx.Response, limit: int) -> BoundedBody:
        """The reader of a streamed ``response``'s body (raises if it is announced too large).

        A transport that read the body already (``httpx.MockTransport``, test
        doubles) hands it over decoded and whole; it is only bounded then.
        """
        if not response.is_stream_consumed:
            return cls(response.status_code, response.headers, limit)
        body = cls(response.status_code, {}, limit)
        body.feed(response.content)
        return body

    def feed(self, chunk: bytes) -> bool:
        """Add raw bytes; ``True`` once the body is complete enough (stop reading)."""
        room = self.limit - len(self._body)
        if self._decoder is not None:
            try:
                chunk = self._decoder.decompress(chunk, room + 1)
            except zlib.error:
                if self.truncate:
                    return True
                raise _malformed("its compressed body is corrupt") from None
            overflow = len(chunk) > room or bool(self._decoder.unconsumed_tail)
        else:
            overflow = len(chunk) > room
        if overflow:
            if not self.truncate:
                raise body_too_large(self.limit)
            self._body += chunk[:room]
            return True
        self._body += chunk
        return False

    def body(self) -> bytes:
        """Everything received (at most ``limit`` bytes)."""
        return bytes(self._body)


def transport_error(
    what: str, url: str, exc: Exception, *, connection_failed: bool = False
) -> AuthorizationServerUnavailable:
    """The failure for an exception raised while talking to ``url``.

    ``connection_failed``: the connection was refused, reset or dropped,
    which says the server as a whole is failing (``server_wide``).
    """
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        detail = "did not answer in time"
    elif isinstance(exc, httpx.ConnectError):
        detail = "could not be reached"
    else:
        detail = f"failed ({type(exc).__name__})"
    return AuthorizationServerUnavailable(
        f"The {what} endpoint {url} {detail}; check that the authorization server is "
        "up and reachable from here.",
        server_wide=connection_failed,
    )


def unexpected_failure(what: str, exc: BaseException) -> InvalidIntrospectionResponse:
    """The failure for an exception nobody foresaw while handling one answer.

    Whatever odd answer caused it, it is no answer: 503, never cached, and
    the exception's text is left out (it may quote the answer).
    """
    return InvalidIntrospectionResponse(
        f"The {what} answer could not be handled ({type(exc).__name__}); the request "
        "failed closed. Check what the authorization server answers."
    )
