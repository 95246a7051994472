"""Property tests: hostile headers and hostile answers never get a request in.

Whatever an attacker puts in ``Authorization`` and the query string, and
whatever an authorization server (or something pretending to be one) sends
back, the pure protocol code raises only its documented errors, and says
"active" only when ``active`` is exactly JSON ``true``, ``exp``/``nbf``
allow it and the claim rules hold. Example counts are modest: seconds, not
minutes.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import time
import zlib
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from genauth_guard import (
    IntrospectionError,
    Introspector,
    InvalidIntrospectionResponse,
    InvalidRequest,
    Rejection,
)
from genauth_guard._bearer import extract_bearer
from genauth_guard._flow import Answer
from genauth_guard._policy import GuardPolicy
from genauth_guard._protocol import BoundedBody, parse_introspection_response

NOW = float(int(time.time()))  # near the real clock, which _parse reads
B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 2.1, written out again as the oracle
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

b64_tokens = st.from_regex(B64TOKEN, fullmatch=True)
anything = st.text(max_size=60)
token_like = st.one_of(b64_tokens, anything, st.just(""), st.text('ab=+/ ,\t"\\', max_size=20))
schemes = st.sampled_from(
    ["Bearer", "bearer", "BEARER", "Basic", "Token", "", "Bearer,", "Be arer"]
)
spaces = st.sampled_from(["", " ", "  ", "\t", " \t "])


@st.composite
def authorization_values(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        return draw(anything)
    return draw(spaces) + draw(schemes) + draw(spaces) + draw(token_like) + draw(spaces)


query_strings = st.one_of(
    anything,
    st.lists(
        st.tuples(st.sampled_from(["access_token", "a", "access_token[]", ""]), token_like),
        max_size=3,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)),
)


@FAST
@given(
    headers=st.lists(authorization_values(), max_size=3),
    query=query_strings,
    allow_query=st.booleans(),
    max_length=st.integers(1, 80),
)
def test_bearer_extraction_yields_a_valid_token_or_a_documented_refusal(
    headers: list[str], query: str, allow_query: bool, max_length: int
) -> None:
    try:
        token = extract_bearer(headers, query, allow_query_token=allow_query, max_length=max_length)
    except InvalidRequest as exc:
        assert str(exc)  # says what was wrong
        return
    if token is None:
        return
    assert B64TOKEN.fullmatch(token) and len(token) <= max_length
    assert len(headers) <= 1
    if headers:
        scheme, _, rest = headers[0].strip(" \t").partition(" ")
        assert scheme.lower() == "bearer" and rest.strip(" ") == token
    else:
        assert allow_query and token in query


@FAST
@given(headers=st.lists(authorization_values(), max_size=3), query=query_strings)
def test_the_guard_policy_answers_400_or_401_or_hands_over_a_token(
    headers: list[str], query: str
) -> None:
    outcome = GuardPolicy(max_token_length=64).token(headers, query)
    if isinstance(outcome, Rejection):
        assert outcome.status in (400, 401)
        assert outcome.challenge("api") is not None
    else:
        assert B64TOKEN.fullmatch(outcome) and len(outcome) <= 64


# ---------------------------------------------------------------- answers

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
times = st.one_of(
    st.integers(int(NOW) - 100, int(NOW) + 100),
    st.floats(NOW - 100, NOW + 100),
    json_values,
)
claims = st.fixed_dictionaries(
    {},
    optional={
        "active": st.one_of(st.booleans(), st.sampled_from(["true", 1, 0, None, [True], {}])),
        "exp": times,
        "nbf": times,
        "iat": times,
        "sub": st.one_of(st.text(max_size=10), json_values),
        "scope": st.one_of(st.text(max_size=20), json_values),
        "aud": st.one_of(
            st.sampled_from(["api", "other"]),
            st.lists(st.sampled_from(["api", "other", ""]), max_size=3),
            json_values,
        ),
        "iss": st.one_of(st.sampled_from(["https://as.example", "https://evil"]), json_values),
        "client_id": st.one_of(st.sampled_from(["app", "other-app"]), json_values),
        "token_type": st.one_of(st.sampled_from(["Bearer", "bearer", "DPoP"]), json_values),
        "username": st.one_of(st.text(max_size=10), json_values),
    },
)


def encode(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    claims.map(encode),
    json_values.map(encode),
    st.binary(max_size=80),
    st.sampled_from([b"", b"{", b"<html>", b'{"active": true', b"\xff\xfe", b"NaN"]),
)
statuses = st.one_of(st.just(200), st.integers(100, 599))
leeways = st.sampled_from([0.0, 0.5, 30.0])


def usable(data: Any, leeway: float, earliest: float = NOW, latest: float = NOW) -> bool:
    """The oracle: what an answer accepted at a time in ``[earliest, latest]`` said."""
    if not isinstance(data, dict) or data.get("active") is not True:
        return False
    exp, nbf = data.get("exp"), data.get("nbf")
    if exp is not None and not earliest < exp + leeway:
        return False
    return not (nbf is not None and latest < nbf - leeway)


def decoded(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


@FAST
@given(status=statuses, body=bodies, leeway=leeways)
def test_answers_are_accepted_only_when_exactly_active_and_in_their_time_window(
    status: int, body: bytes, leeway: float
) -> None:
    try:
        info = parse_introspection_response(status, {}, body, now=NOW, leeway=leeway)
    except IntrospectionError as exc:
        assert str(exc)
        return
    assert status == 200
    if info.active:
        data = decoded(body)
        assert usable(data, leeway)
        assert all(isinstance(x, str) for x in (*info.scopes, *info.aud))
        assert info.exp is None or (isinstance(info.exp, int) and math.isfinite(info.exp))


RULES: dict[str, Any] = {
    "audience": "api",
    "issuer": "https://as.example",
    "allowed_client_ids": ["app"],
    "token_type": "Bearer",
}
ruled = Introspector("https://as.example/introspect", client_id="rs", client_secret="s", **RULES)


@FAST
@given(status=statuses, body=bodies)
def test_with_claim_rules_an_accepted_answer_also_satisfies_every_rule(
    status: int, body: bytes
) -> None:
    """Through the flow's ``_parse``, which every answer of both drivers goes through."""
    earliest = time.time()
    try:
        info = ruled.flow._parse(b"\0" * 32, Answer(status, httpx.Headers(), body))
    except IntrospectionError:
        return
    latest = time.time()
    if not info.active:
        return
    assert usable(decoded(body), 0.0, earliest, latest)
    assert info.aud and "api" in info.aud
    assert info.iss == "https://as.example"
    assert info.client_id == "app"
    assert (info.token_type or "").lower() == "bearer"


# ---------------------------------------------------------------- reading bodies


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    edges = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@FAST
@given(
    payload=st.binary(max_size=3000),
    limit=st.integers(1, 2000),
    compressed=st.booleans(),
    data=st.data(),
)
def test_bodies_are_bounded_after_decoding_however_they_are_chunked(
    payload: bytes, limit: int, compressed: bool, data: st.DataObject
) -> None:
    wire = zlib.compress(payload) if compressed else payload
    headers = {"content-encoding": "deflate"} if compressed else {}
    body = BoundedBody(200, headers, limit)
    try:
        for chunk in data.draw(chunked(wire)):
            if body.feed(chunk):
                break
    except InvalidIntrospectionResponse:
        assert len(payload) > limit
        return
    assert len(payload) <= limit and body.body() == payload
    error_page = BoundedBody(503, headers, limit)  # an error answer is cut, never a failure
    for chunk in data.draw(chunked(wire)):
        if error_page.feed(chunk):
            break
    assert error_page.body() == payload[:limit]
