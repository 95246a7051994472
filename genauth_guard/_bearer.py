"""Finding the bearer token in a request (RFC 6750 section 2), with no I/O.

Both middlewares hand over the raw ``Authorization`` header values and the
query string; this module decides whether there is exactly one well-formed
bearer token, none at all, or a malformed request. Deciding here, once, is
what makes both guards answer every request byte for byte alike.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import parse_qsl

from .errors import InvalidRequest

DEFAULT_MAX_TOKEN_LENGTH = 4096
"""Longest token accepted; longer ones are refused before any network call."""

BEARER_ONLY = frozenset({"bearer"})
BEARER_AND_DPOP = frozenset({"bearer", "dpop"})

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# RFC 9110 token (the auth-scheme).
_SCHEME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# After a comma, "scheme SP credentials" starts another credential (an
# auth-param is "name = value"): the sign of two headers folded into one.
_NEXT_CREDENTIAL = re.compile(r"[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+ +[^ \t=,]")


def split_credentials(value: str) -> list[str]:
    """The credentials in one ``Authorization`` header value, one per header sent.

    Repeated headers folded into one value are joined by commas (RFC 9110
    5.3; WSGI servers must fold them, having room for one value per header).
    A comma outside a quoted string that starts a new ``scheme credentials``
    separates two of them; commas inside one credential (auth-params,
    ``Bearer a,b``) do not. Both guards split every value this way: a
    folded pair in one header cannot be told from two headers on WSGI, so
    the ASGI guard treats it as two headers too.
    """
    if "," not in value:  # fast path: almost every request
        return [value]
    values: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted and _NEXT_CREDENTIAL.match(value, index + 1):
            values.append(value[start:index])
            start = index + 1
    values.append(value[start:])
    return values


def check_token(token: str, max_length: int = DEFAULT_MAX_TOKEN_LENGTH) -> str:
    """``token`` if it is a well-formed b64token of at most ``max_length`` characters.

    Raises ``InvalidRequest`` otherwise, before any network call is made.
    """
    if len(token) > max_length:
        raise InvalidRequest(
            f"The access token is longer than {max_length} characters; send the token "
            "exactly as the authorization server issued it."
        )
    if not _B64TOKEN.fullmatch(token):
        raise InvalidRequest(
            "The access token contains characters a bearer token cannot have (RFC 6750 "
            "b64token); send the token exactly as the authorization server issued it."
        )
    return token


def parse_authorization(value: str, max_length: int = DEFAULT_MAX_TOKEN_LENGTH) -> str | None:
    """The bearer token in one ``Authorization`` header value.

    Returns ``None`` when the header uses another scheme (``Basic`` ...): that
    is "no bearer token", answered with a bare challenge. Raises
    ``InvalidRequest`` when the header is not a well-formed credential.
    """
    found = parse_credentials(value, BEARER_ONLY, max_length)
    return None if found is None else found[1]


def parse_credentials(
    value: str, schemes: frozenset[str], max_length: int = DEFAULT_MAX_TOKEN_LENGTH
) -> tuple[str, str] | None:
    """``(scheme, token)`` of one ``Authorization`` value whose scheme is in ``schemes``.

    ``schemes`` are lower case (``bearer``, ``dpop``); the scheme returned is
    lower case too. Another scheme is ``None`` (no credentials of ours); a
    malformed value is ``InvalidRequest``. Bearer (RFC 6750 2.1) and DPoP
    (RFC 9449 7.1) credentials share one syntax: ``scheme 1*SP token68``.
    """
    value = value.strip(" \t")
    scheme, sep, rest = value.partition(" ")
    if not scheme or not _SCHEME.fullmatch(scheme):
        raise InvalidRequest(
            "The Authorization header is malformed; send 'Authorization: Bearer <token>'."
        )
    scheme = scheme.lower()
    if scheme not in schemes:
        return None
    token = rest.lstrip(" ")
    if not sep or not token:
        name = "DPoP" if scheme == "dpop" else "Bearer"
        raise InvalidRequest(
            f"The Authorization header names the {name} scheme but carries no token; "
            f"send 'Authorization: {name} <token>'."
        )
    return scheme, check_token(token, max_length)


def _query_tokens(query_string: str) -> list[str]:
    """The values of every ``access_token`` query parameter.

    Names are compared once percent-decoded, as every framework behind the
    guard decodes them: ``access%5Ftoken`` is ``access_token`` too.
    """
    if "access" not in query_string and "%" not in query_string:  # fast path
        return []
    return [
        value
        for name, value in parse_qsl(query_string, keep_blank_values=True)
        if name == "access_token"
    ]


def extract_bearer(
    authorization: Sequence[str],
    query_string: str = "",
    *,
    allow_query_token: bool = False,
    max_length: int = DEFAULT_MAX_TOKEN_LENGTH,
) -> str | None:
    """The request's single bearer token, or ``None`` when it sent none.

    ``authorization`` holds every ``Authorization`` header value of the request.
    RFC 6750 forbids more than one way of sending the token, so two headers
    (also folded into one value, see ``split_credentials``), or a header plus
    an ``access_token`` query parameter, are ``InvalidRequest``. Tokens in
    the URL end up in access logs and browser history; they are refused
    unless ``allow_query_token`` is set (RFC 6750 section 2.3 makes them
    optional for the resource server).
    """
    found = extract_credentials(
        authorization,
        query_string,
        schemes=BEARER_ONLY,
        allow_query_token=allow_query_token,
        max_length=max_length,
    )
    return None if found is None else found[1]


def extract_credentials(
    authorization: Sequence[str],
    query_string: str = "",
    *,
    schemes: frozenset[str] = BEARER_ONLY,
    allow_query_token: bool = False,
    max_length: int = DEFAULT_MAX_TOKEN_LENGTH,
) -> tuple[str, str] | None:
    """``(scheme, token)`` of the request's single access token, or ``None`` if it sent none.

    ``extract_bearer`` for every scheme in ``schemes`` (lower case: ``bearer``,
    ``dpop``). A token in the query is a bearer token (RFC 6750 2.3).
    """
    authorization = [part for value in authorization for part in split_credentials(value)]
    if len(authorization) > 1:
        raise InvalidRequest(
            "The request has more than one Authorization header; send the token once."
        )
    query_tokens = _query_tokens(query_string)
    header = parse_credentials(authorization[0], schemes, max_length) if authorization else None
    if not query_tokens:
        return header
    if header is not None or len(query_tokens) > 1:
        raise InvalidRequest(
            "The request carries the access token in more than one place; send it "
            "only in the Authorization header."
        )
    if not allow_query_token:
        raise InvalidRequest(
            "Access tokens in the URL are not accepted (they leak into logs); send "
            "'Authorization: Bearer <token>' instead."
        )
    if authorization:
        # Another scheme's credentials plus a URL token: two credentials, one request.
        raise InvalidRequest(
            "The request carries credentials in more than one place; send the access "
            "token only in the Authorization header."
        )
    return "bearer", check_token(query_tokens[0], max_length)


# ---------------------------------------------------------------- the cached path

_BEARER_PREFIX = b"Bearer "


def plain_bearer_asgi(headers: Iterable[tuple[bytes, bytes]], query_string: bytes) -> bytes | None:
    """The token bytes of a plain bearer request, to look up before any parsing; else ``None``.

    Plain: exactly one ``Authorization`` header, ``Bearer`` and one space
    before the token, and no query parameter that could be a second token.
    The bytes are *not* checked: they are only looked up, and only a token
    that passed ``check_token`` is ever stored, so a hit proves them a
    well-formed b64token, which ``extract_credentials`` would have returned
    (as a bearer token) for this request byte for byte. ``None``, or a miss,
    leaves every decision to ``extract_credentials``.
    """
    found = None
    for name, value in headers:
        if name == b"authorization":
            if found is not None:
                return None
            found = value
    if found is None or not found.startswith(_BEARER_PREFIX):
        return None
    if query_string and (b"access" in query_string or b"%" in query_string):
        return None
    return found[7:]


def plain_bearer_wsgi(authorization: object, query_string: object) -> bytes | None:
    """``plain_bearer_asgi`` for WSGI's one ``HTTP_AUTHORIZATION`` value (folds included)."""
    if (
        type(authorization) is not str
        or not authorization.startswith("Bearer ")
        or not authorization.isascii()
    ):
        return None
    if query_string and (
        type(query_string) is not str or "access" in query_string or "%" in query_string
    ):
        return None
    return authorization[7:].encode()
