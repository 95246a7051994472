"""Fuzzing the ``DPoP`` header over real HTTP: nothing malformed passes, nothing is a 500.

Three kinds of input, each sent with a token bound to the client's key:
any header value at all; a valid proof with characters changed, added or
removed; and a proof rebuilt from a valid one with one or more of its
members replaced by a wrong value, then *signed with the right key*, so
that only the claim checks stand between it and the route.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jwt.algorithms import get_default_algorithms

from genauth_guard._dpop import DEFAULT_ALGS, ProofError, ProofVerifier
from genauth_guard._htu import normalize_url
from genauth_guard._mtls import CertificateError, der_from_header

from .conftest import RunningAuthServer
from .dpop_support import DPoPClient, Guarded, ath, b64url, serve_guard

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CLIENT = DPoPClient("ES256")


@pytest.fixture(scope="module", params=["asgi", "wsgi"])
def target(
    request: pytest.FixtureRequest, auth_server: RunningAuthServer
) -> Iterator[tuple[Guarded, str]]:
    token = auth_server.server.mint("fuzz", jkt=CLIENT.jkt)
    with serve_guard(request.param, auth_server) as guarded:
        assert guarded.dpop(CLIENT, token).status_code == 200  # the token itself is good
        yield guarded, token


def send(guarded: Guarded, token: str, proof: bytes) -> httpx.Response:
    try:
        return guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    except httpx.LocalProtocolError:  # a value no HTTP client would send
        assume(False)
        raise


def refused(response: httpx.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert response.json()["error"] == "invalid_dpop_proof"


# ---------------------------------------------------------------- any value at all

header_bytes = st.binary(min_size=1, max_size=400).map(
    lambda raw: bytes(b if 0x21 <= b <= 0x7E or b >= 0x80 else 0x41 for b in raw)
)


@FUZZ
@given(value=st.one_of(header_bytes, st.from_regex(rb"\A[A-Za-z0-9_\-.=+/~]{0,300}\Z")))
def test_any_dpop_header_is_refused_cleanly(target: tuple[Guarded, str], value: bytes) -> None:
    guarded, token = target
    assume(value.strip())
    refused(send(guarded, token, value))


# ---------------------------------------------------------------- a valid proof, damaged


@FUZZ
@given(data=st.data())
def test_a_damaged_proof_is_refused(target: tuple[Guarded, str], data: st.DataObject) -> None:
    guarded, token = target
    proof = CLIENT.proof("GET", guarded.url + "/orders", token)
    edits = data.draw(
        st.lists(
            st.tuples(
                st.sampled_from(["replace", "insert", "delete"]),
                st.integers(0, len(proof) - 1),
                st.sampled_from(
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
                ),
            ),
            min_size=1,
            max_size=4,
        )
    )
    damaged = proof
    for kind, index, char in edits:
        index = min(index, len(damaged) - 1)
        if kind == "replace":
            damaged = damaged[:index] + char + damaged[index + 1 :]
        elif kind == "insert":
            damaged = damaged[:index] + char + damaged[index:]
        elif len(damaged) > 1:
            damaged = damaged[:index] + damaged[index + 1 :]
    assume(damaged != proof)
    refused(send(guarded, token, damaged.encode()))


# ---------------------------------------------------------------- well signed, wrong claims

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
not_a_string = json_values.filter(lambda v: not isinstance(v, str))
# Never a URL of this server: no "127.0.0.1" in it.
wrong_htu = st.one_of(
    not_a_string,
    st.text(max_size=60).filter(lambda v: "127.0.0.1" not in v),
    st.builds(lambda p: "http://example.com/" + p, st.text(max_size=10)),
)
now = time.time()
wrong_iat = st.one_of(
    json_values.filter(lambda v: isinstance(v, str | bool | list | dict) or v is None),
    st.floats(max_value=now - 400, allow_nan=False, allow_infinity=True),
    st.floats(min_value=now + 3600, allow_nan=False, allow_infinity=True),
    st.integers(max_value=int(now) - 400),
    st.integers(min_value=int(now) + 3600),
)
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "typ": json_values.filter(
        lambda v: not (isinstance(v, str) and v.lower() in ("dpop+jwt", "application/dpop+jwt"))
    ),
    "alg": json_values.filter(lambda v: v not in ("ES256", "RS256", "PS256", "EdDSA")),
    "jwk": json_values,
    "jwk.d": st.text(min_size=1, max_size=50),
    "crit": json_values,
    "jti": st.one_of(not_a_string, st.just(""), st.text(min_size=513, max_size=600)),
    "htm": json_values.filter(lambda v: v != "GET"),
    "htu": wrong_htu,
    "iat": wrong_iat,
    "ath": json_values.filter(lambda v: v != "correct"),
}
MISSING = ["typ", "alg", "jwk", "jti", "htm", "htu", "iat", "ath"]


def signed(header: dict[str, Any], payload: dict[str, Any]) -> str:
    """A compact JWS of exactly these members, signed by the client's ES256 key."""
    signing_input = ".".join(
        b64url(json.dumps(part, allow_nan=True).encode()) for part in (header, payload)
    )
    signature = get_default_algorithms()["ES256"].sign(signing_input.encode(), CLIENT.key)
    return f"{signing_input}.{b64url(signature)}"


@FUZZ
@given(
    wrong=st.dictionaries(st.sampled_from(sorted(WRONG)), st.none(), min_size=1, max_size=3),
    missing=st.lists(st.sampled_from(MISSING), max_size=2),
    data=st.data(),
)
def test_a_well_signed_proof_with_a_wrong_claim_is_refused(
    target: tuple[Guarded, str],
    wrong: dict[str, None],
    missing: list[str],
    data: st.DataObject,
) -> None:
    guarded, token = target
    header: dict[str, Any] = {"typ": "dpop+jwt", "alg": "ES256", "jwk": CLIENT.jwk}
    payload: dict[str, Any] = {
        "jti": data.draw(st.uuids()).hex,
        "htm": "GET",
        "htu": guarded.url + "/orders",
        "iat": int(time.time()),
        "ath": ath(token),
    }
    for name in wrong:
        value = data.draw(WRONG[name], label=name)
        if name == "jwk.d":
            header["jwk"] = {**CLIENT.jwk, "d": value}
        elif name in header or name == "crit":
            header[name] = value
        else:
            payload[name] = ath(token + "x") if value == "correct" else value
    for name in missing:
        header.pop(name, None)
        payload.pop(name, None)
    refused(send(guarded, token, signed(header, payload).encode()))


def test_the_fuzzed_proof_would_pass_unharmed(target: tuple[Guarded, str]) -> None:
    """The control: the same construction, nothing wrong, passes (so refusals mean something)."""
    guarded, token = target
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": CLIENT.jwk}
    payload = {
        "jti": "control-" + guarded.kind,
        "htm": "GET",
        "htu": guarded.url + "/orders",
        "iat": int(time.time()),
        "ath": ath(token),
    }
    assert send(guarded, token, signed(header, payload).encode()).status_code == 200


# ---------------------------------------------------------------- the pure parts, harder

PURE = settings(max_examples=1500, deadline=None)


@PURE
@given(url=st.one_of(st.text(max_size=80), st.from_regex(r"\A(https?|wss?)://[^\s]{0,40}\Z")))
def test_url_normalisation_never_raises_and_is_idempotent(url: str) -> None:
    normalized = normalize_url(url)
    if normalized is not None:
        assert normalize_url(normalized) == normalized
        assert normalized.startswith(("http://", "https://"))
        assert "?" not in normalized and "#" not in normalized


@PURE
@given(value=st.text(max_size=300))
def test_the_proof_checker_raises_only_proof_errors(value: str) -> None:
    verifier = ProofVerifier(DEFAULT_ALGS, max_age=300, future=5)
    with pytest.raises(ProofError):
        verifier.verify(value, method="GET", url="http://h/", token="t", now=time.time())


@PURE
@given(value=st.one_of(st.text(max_size=200), st.from_regex(r"\A:[A-Za-z0-9+/=]{0,80}:\Z")))
def test_a_certificate_header_is_a_thumbprint_or_a_certificate_error(value: str) -> None:
    try:
        der = der_from_header(value)
    except CertificateError:
        return
    assert der[0] == 0x30  # only ever one DER SEQUENCE comes out
