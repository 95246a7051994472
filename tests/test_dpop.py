"""DPoP proofs (RFC 9449 4.3, 7) over real HTTP, on the ASGI and the WSGI guard alike.

Each check, passed and failed: a proof by a key of each allowed algorithm,
replays, ``iat`` too old or ahead, ``htm``, ``htu`` (host, path, query,
normalisation), ``ath``, another key, ``alg: none``, HS256, a private key
in ``jwk``, two ``DPoP`` headers, a bound token sent as ``Bearer``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import jwt
import pytest

from .conftest import RunningAuthServer
from .dpop_support import (
    ALGS,
    DPOP_ALGS,
    DPoPClient,
    Guarded,
    ath,
    challenge,
    public_jwk,
    refused_proof,
    refused_token,
    serve_guard,
    unsigned,
)

KINDS = ("asgi", "wsgi")


@pytest.fixture(scope="module", params=KINDS)
def guarded(request: pytest.FixtureRequest, auth_server: RunningAuthServer) -> Iterator[Guarded]:
    with serve_guard(request.param, auth_server) as running:
        yield running


@pytest.fixture
def client() -> DPoPClient:
    return DPoPClient("ES256")


def bound_token(auth_server: RunningAuthServer, client: DPoPClient, sub: str = "alice") -> str:
    return auth_server.server.mint(sub, "orders:read", jkt=client.jkt)


# ---------------------------------------------------------------- accepted


@pytest.mark.parametrize("alg", ALGS)
def test_a_proof_by_a_key_of_each_allowed_algorithm_is_accepted(
    guarded: Guarded, auth_server: RunningAuthServer, alg: str
) -> None:
    client = DPoPClient(alg)
    token = bound_token(auth_server, client, f"user-{alg}")
    response = guarded.dpop(client, token)
    assert response.status_code == 200, response.text
    assert response.json()["identity"] == f"user-{alg}"
    assert response.json()["cnf"] == {"jkt": client.jkt}
    if guarded.kind == "wsgi":
        assert response.json()["auth_type"] == "DPoP"
    # cached answer, new proof: the proof is checked on every request
    assert guarded.dpop(client, token).status_code == 200


def test_the_query_is_ignored_and_the_url_normalised(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    assert guarded.dpop(client, token, "/orders?page=2&q=x").status_code == 200
    host_port = guarded.url.removeprefix("http://")
    for htu in (
        f"HTTP://{host_port.upper()}/orders",  # scheme and host case
        f"http://{host_port}/%6Frders",  # an escaped unreserved character
        f"http://{host_port}/x/../orders",  # dot segments
        f"http://{host_port}/orders?other=query#fragment",  # ignored on both sides
    ):
        assert guarded.dpop(client, token, htu=htu).status_code == 200, htu


def test_a_post_proof_for_a_post(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    assert guarded.dpop(client, token, method="POST").status_code == 200


def test_an_iat_a_little_ahead_or_behind_passes(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    assert guarded.dpop(client, token, iat=time.time() + 3).status_code == 200
    assert guarded.dpop(client, token, iat=time.time() - 250).status_code == 200


# ---------------------------------------------------------------- the proof's own checks


def test_a_replayed_proof_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    headers = client.headers("GET", guarded.url + "/orders", token)
    assert guarded.get(headers=headers).status_code == 200
    refused_proof(guarded.get(headers=headers), "already used")
    # the same jti by the same key, even in another proof (another iat, another signature)
    jti = "reused-" + token[:8]
    assert guarded.dpop(client, token, jti=jti).status_code == 200
    refused_proof(guarded.dpop(client, token, jti=jti, iat=time.time() - 1), "already used")
    # the same jti from another key is another proof
    other = DPoPClient("EdDSA")
    assert guarded.dpop(other, bound_token(auth_server, other), jti=jti).status_code == 200


def test_an_old_proof_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    refused_proof(guarded.dpop(client, token, iat=time.time() - 301), "older than 300 seconds")


def test_a_proof_from_the_future_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    refused_proof(guarded.dpop(client, token, iat=time.time() + 60), "future")


def test_a_proof_for_another_method_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    proof = client.proof("POST", guarded.url + "/orders", token)
    response = guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    refused_proof(response, "htm")
    lower = client.proof("get", guarded.url + "/orders", token)  # methods are case-sensitive
    refused_proof(guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": lower}), "htm")


@pytest.mark.parametrize(
    "htu",
    [
        "http://evil.example/orders",
        "http://127.0.0.1:1/orders",
        "{base}/other",
        "{base}/orders/",
        "{base}/Orders",
        "https://{host}/orders",
        "{base}/orders%2F",
        "/orders",
        "",
    ],
)
def test_a_proof_for_another_url_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient, htu: str
) -> None:
    token = bound_token(auth_server, client)
    host = guarded.url.removeprefix("http://")
    response = guarded.dpop(client, token, htu=htu.format(base=guarded.url, host=host) or " ")
    refused_proof(response, "htu")


def test_a_proof_for_another_token_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    other = bound_token(auth_server, client)
    refused_proof(guarded.dpop(client, token, claims={"ath": ath(other)}), "ath")
    refused_proof(guarded.dpop(client, token, drop=("ath",)), "ath")


@pytest.mark.parametrize("claim", ["jti", "htm", "htu", "iat"])
def test_a_proof_without_a_required_claim_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient, claim: str
) -> None:
    token = bound_token(auth_server, client)
    refused_proof(guarded.dpop(client, token, drop=(claim,)))


def test_alg_none_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": client.jwk}
    payload = {
        "jti": "none-1",
        "htm": "GET",
        "htu": guarded.url + "/orders",
        "iat": int(time.time()),
        "ath": ath(token),
    }
    proof = unsigned(header, payload)
    response = guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    refused_proof(response, "alg 'none' is not one of ES256, RS256, PS256, EdDSA")


def test_hs256_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    # The classic confusion: the public key's own bytes as an HMAC secret.
    secret = client.jwk["x"].encode()
    proof = jwt.encode(
        {"jti": "hs", "htm": "GET", "htu": guarded.url + "/orders", "iat": int(time.time())}
        | {"ath": ath(token)},
        secret,
        algorithm="HS256",
        headers={"typ": "dpop+jwt", "jwk": client.jwk},
    )
    response = guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": proof})
    refused_proof(response, "alg")


def test_a_private_key_in_jwk_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    private = public_jwk(client.key, private=True)
    refused_proof(guarded.dpop(client, token, header={"jwk": private}), "private key")


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ({"typ": "JWT"}, "typ"),
        ({"typ": None}, "typ"),
        ({"jwk": None}, "jwk"),
        ({"jwk": {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"}}, "jwk"),
        ({"crit": ["exp"]}, "extension"),
    ],
)
def test_a_malformed_header_is_refused(
    guarded: Guarded,
    auth_server: RunningAuthServer,
    client: DPoPClient,
    header: dict[str, object],
    says: str,
) -> None:
    token = bound_token(auth_server, client)
    refused_proof(guarded.dpop(client, token, header=header), says)


def test_a_signature_by_another_key_than_the_jwk_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    impostor = DPoPClient("ES256", which=1)  # signs, but names the victim's key
    response = guarded.dpop(impostor, token, header={"jwk": client.jwk})
    refused_proof(response, "signature")


def test_two_dpop_headers_are_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    url = guarded.url + "/orders"
    proofs = [client.proof("GET", url, token), client.proof("GET", url, token)]
    headers = [("Authorization", f"DPoP {token}"), ("DPoP", proofs[0]), ("DPoP", proofs[1])]
    refused_proof(guarded.client.get(url, headers=headers), "more than one DPoP header")


def test_a_missing_or_empty_proof_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    refused_proof(guarded.get(headers={"Authorization": f"DPoP {token}"}), "needs a 'DPoP' header")
    for junk in ("x", "a.b", "a.b.c.d", "é.é.é".encode(), "a" * 9000):
        response = guarded.get(headers={"Authorization": f"DPoP {token}", "DPoP": junk})
        refused_proof(response)


# ---------------------------------------------------------------- the binding


def test_a_proof_by_another_key_is_invalid_token(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    thief = DPoPClient("ES256", which=1)
    refused_token(guarded.dpop(thief, token), "another key")


def test_a_bound_token_sent_as_bearer_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    response = guarded.get(headers={"Authorization": f"Bearer {token}"})
    refused_token(response, "bound to a DPoP key", scheme="Bearer")
    assert challenge(response).endswith(DPOP_ALGS)  # DPoP offered, without an error
    # ...even with a valid proof beside it
    headers = {"Authorization": f"Bearer {token}", "DPoP": client.proof("GET", "x", token)}
    refused_token(guarded.get(headers=headers), "bound to a DPoP key", scheme="Bearer")


def test_an_unbound_token_sent_as_dpop_is_refused(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    refused_token(guarded.dpop(client, token), "not bound to a DPoP key")
    assert guarded.get(headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_inactive_bound_token_is_invalid_token_in_the_dpop_challenge(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    auth_server.server.revoke(token)
    refused_token(guarded.dpop(client, token), "not active")


def test_a_missing_scope_answers_in_the_dpop_challenge(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)
    response = guarded.dpop(client, token, "/orders/write")
    assert response.status_code == 403
    assert f'{DPOP_ALGS}, error="insufficient_scope"' in challenge(response)
    assert challenge(response).startswith('Bearer realm="api", DPoP')
    writer = auth_server.server.mint("alice", "orders:write", jkt=client.jkt)
    assert guarded.dpop(client, writer, "/orders/write").json() == {"written": True}


def test_no_token_gets_both_challenges_without_an_error(guarded: Guarded) -> None:
    response = guarded.get()
    assert response.status_code == 401
    assert challenge(response) == f'Bearer realm="api", {DPOP_ALGS}'


def test_the_proof_is_checked_before_introspection(
    guarded: Guarded, auth_server: RunningAuthServer, client: DPoPClient
) -> None:
    token = bound_token(auth_server, client)  # never introspected: every proof is bad
    before = auth_server.calls
    refused_proof(guarded.dpop(client, token, iat=0))
    refused_proof(guarded.dpop(client, token, htu="http://elsewhere/orders"))
    assert auth_server.calls == before
