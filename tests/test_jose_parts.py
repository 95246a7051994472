"""The pure parts of signed messages: the JOSE helpers others reuse, the JWKS rules, the options.

The JWKS's timing rules (keep an hour or max-age, refetch at most once per
10 s) are checked with explicit clock values, not by waiting.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from genauth_guard import ConfigurationError, Introspector
from genauth_guard._jose import (
    JoseError,
    jwk_thumbprint,
    load_public_jwk,
    public_jwk,
    sign_jws,
    verify_jws,
)
from genauth_guard._jwks import Fetch, JwksCache, cache_max_age

from .jose_endpoint import compact, new_key, private_jwk, thumbprint
from .jose_endpoint import public_jwk as hand_made_jwk

KINDS = ("RSA", "P-256", "P-384", "P-521", "Ed25519")


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {kind: new_key(kind) for kind in KINDS}


# ---------------------------------------------------------------- the helpers DPoP reuses


@pytest.mark.parametrize("kind", KINDS)
def test_thumbprints_and_public_jwks_match_a_hand_made_rfc_7638(
    keys: dict[str, Any], kind: str
) -> None:
    jwk = hand_made_jwk(keys[kind])
    assert public_jwk(keys[kind]) == jwk
    assert jwk_thumbprint(jwk) == thumbprint(jwk)
    assert jwk_thumbprint({**jwk, "kid": "k", "alg": "x", "use": "sig"}) == thumbprint(jwk)


@pytest.mark.parametrize("kind", KINDS)
def test_a_proof_signed_with_the_key_of_its_jwk_header_verifies(
    keys: dict[str, Any], kind: str
) -> None:
    """What a DPoP check does: key from the header, then an allow-listed verification."""
    alg = {"RSA": "PS256", "P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}.get(kind, "EdDSA")
    header = {"typ": "dpop+jwt", "alg": alg, "jwk": hand_made_jwk(keys[kind])}
    proof = compact(header, {"htm": "GET", "jti": "j1"}, keys[kind])
    key = load_public_jwk(header["jwk"])
    verified = verify_jws(proof, key, ["ES256", "ES384", "ES512", "PS256", "EdDSA"])
    assert verified.claims == {"htm": "GET", "jti": "j1"}
    with pytest.raises(JoseError, match="is not one of"):
        verify_jws(proof, key, ["RS256"])


def test_public_jwks_with_private_members_or_symmetric_keys_are_refused(
    keys: dict[str, Any],
) -> None:
    bad_jwks: list[Any] = [
        private_jwk(keys["P-256"]),
        {"kty": "oct", "k": "c2VjcmV0"},
        {"kty": "RSA"},
        {"kty": "EC", "crv": "secp256k1", "x": "AA", "y": "AA"},
        ["not", "a", "jwk"],
    ]
    for bad in bad_jwks:
        with pytest.raises(JoseError):
            load_public_jwk(bad)


def test_verify_jws_refuses_symmetric_algorithms_outright(keys: dict[str, Any]) -> None:
    token = sign_jws({"a": 1}, b"k" * 32, "HS256")
    with pytest.raises(ValueError, match="asymmetric algorithms only"):
        verify_jws(token, keys["RSA"].public_key(), ["HS256"])
    rs = sign_jws({"a": 1}, keys["RSA"], "RS256")
    with pytest.raises(JoseError, match="does not fit the key"):
        verify_jws(rs, keys["P-256"].public_key(), ["RS256"])


def test_without_the_extra_the_package_imports_and_the_features_say_which_extra() -> None:
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("jwt", "cryptography"):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
import genauth_guard
from genauth_guard import ConfigurationError, Introspector
Introspector("https://as.example/i", client_id="c", client_secret="s")
for options in ({"auth_method": "private_key_jwt", "client_private_key": "x"},
                {"auth_method": "client_secret_jwt"},
                {"jwt_response": True, "jwks_uri": "https://as.example/j",
                 "jwt_response_issuer": "https://as.example"}):
    try:
        Introspector("https://as.example/i", client_id="c", client_secret="s" * 64, **options)
    except ConfigurationError as exc:
        assert "pip install 'genauth-guard[jose]'" in str(exc), exc
    else:
        raise AssertionError(options)
assert "jwt" not in sys.modules and "cryptography" not in sys.modules
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


# ---------------------------------------------------------------- the JWKS rules


def jwks_body(*entries: dict[str, Any]) -> bytes:
    return json.dumps({"keys": list(entries)}).encode()


def test_the_set_is_kept_an_hour_then_fetched_again(keys: dict[str, Any]) -> None:
    jwks = JwksCache("https://as.example/jwks")
    assert jwks.select("k1", "ES256", 0.0) is Fetch.NEEDED
    jwks.store(200, {}, jwks_body({**hand_made_jwk(keys["P-256"]), "kid": "k1"}), 0.0)
    assert jwks.select("k1", "ES256", 3599.0) is not None
    assert jwks.select("k1", "ES256", 3600.0) is Fetch.NEEDED


@pytest.mark.parametrize(
    ("cache_control", "kept"),
    [("max-age=120", 120.0), ("public, max-age=600, must-revalidate", 600.0),
     ("max-age=0", 10.0), ("max-age=99999999", 86400.0), ("no-cache", 3600.0), ("", 3600.0)],
)  # fmt: skip
def test_max_age_is_honoured_within_bounds(cache_control: str, kept: float) -> None:
    assert cache_max_age(httpx.Headers({"Cache-Control": cache_control}), 3600.0, 10.0) == kept


def test_unknown_kids_refetch_once_then_at_most_every_ten_seconds(keys: dict[str, Any]) -> None:
    jwks = JwksCache("https://as.example/jwks")
    assert jwks.select("k1", "ES256", 100.0) is Fetch.NEEDED
    jwks.store(200, {}, jwks_body({**hand_made_jwk(keys["P-256"]), "kid": "k1"}), 100.0)
    assert jwks.select("k2", "ES256", 101.0) is Fetch.NEEDED  # rotation: at once
    assert jwks.select("k2", "ES256", 101.0, may_fetch=False) is None  # still unknown after it
    assert jwks.select("k3", "ES256", 105.0) is None  # again within 10 s: refused, no fetch
    assert jwks.select("k3", "ES256", 111.0) is Fetch.NEEDED  # 10 s later: one more
    assert jwks.select("k1", "ES256", 111.0) is not None  # the known key never waits


def test_keys_are_chosen_by_kid_alg_use_and_type(keys: dict[str, Any]) -> None:
    p256, rsa = hand_made_jwk(keys["P-256"]), hand_made_jwk(keys["RSA"])
    jwks = JwksCache("https://as.example/jwks")
    body = jwks_body(
        {**p256, "kid": "enc", "use": "enc"},
        {**rsa, "kid": "rs", "alg": "RS256"},
        {**p256, "kid": "ec"},
        {**p256, "kid": "verify-only", "key_ops": ["verify"]},
        {**p256, "kid": "sign-only", "key_ops": ["sign"]},
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {**private_jwk(keys["P-256"]), "kid": "leaked"},
        "not an object",
    )
    jwks.store(200, {}, body, 0.0)
    assert jwks.select("enc", "ES256", 1.0, may_fetch=False) is None
    assert jwks.select("rs", "RS256", 1.0) is not None
    assert jwks.select("rs", "PS256", 1.0, may_fetch=False) is None  # its alg says RS256
    assert jwks.select("ec", "ES384", 1.0, may_fetch=False) is None  # a P-256 key
    assert jwks.select("verify-only", "ES256", 1.0) is not None
    for kid in ("sign-only", "hmac", "leaked"):
        assert jwks.select(kid, "ES256", 1.0, may_fetch=False) is None
    assert jwks.select(None, "RS256", 1.0) is not None  # exactly one RSA key
    assert jwks.select(None, "ES256", 1.0, may_fetch=False) is None  # two P-256 keys


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"keys": {}}', jwks_body({"kty": "oct", "k": "AA"})]
)
def test_a_set_that_is_no_set_is_an_unavailable_server_and_not_kept(body: bytes) -> None:
    from genauth_guard import AuthorizationServerUnavailable

    jwks = JwksCache("https://as.example/jwks")
    with pytest.raises(AuthorizationServerUnavailable, match="not a usable JWKS"):
        jwks.store(200, {}, body, 0.0)
    assert jwks.select("k", "ES256", 0.0) is Fetch.NEEDED


# ---------------------------------------------------------------- options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"jwt_response": True, "jwt_response_issuer": "https://as.example"}, "pass jwks_uri="),
        ({"jwt_response": True, "jwks_uri": "https://as.example/jwks"}, "jwt_response_issuer="),
        ({"jwt_response": True, "jwks_uri": "http://as.example/jwks",
          "jwt_response_issuer": "https://as.example"}, "jwks_uri='http://as.example/jwks' uses"),
        ({"jwks_uri": "https://as.example/jwks"}, "jwks_uri is set but jwt_response is off"),
        ({"jwt_response_issuer": "https://as.example"}, "jwt_response_issuer is set but"),
        ({"jwt_response": "yes"}, "jwt_response='yes' must be True or False"),
    ],
)  # fmt: skip
def test_jwt_response_options_are_checked(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Introspector("https://as.example/i", client_id="c", client_secret="s", **options)


def test_a_discovery_issuer_is_the_default_for_answers_and_assertions() -> None:
    introspector = Introspector(
        "https://as.example/i", client_id="c", client_secret="s" * 32,
        auth_method="client_secret_jwt", authorization_server_issuer="https://as.example",
        jwt_response=True, jwks_uri="https://as.example/jwks",
    )  # fmt: skip
    assert introspector.flow.settings.jwt_response_issuer == "https://as.example"
    _, form = introspector.auth.apply("https://as.example/i")
    payload = form["client_assertion"].split(".")[1]
    claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["aud"] == "https://as.example"
    assert claims["iat"] <= time.time() < claims["exp"] <= claims["iat"] + 60
