"""RFC 9701 signed introspection answers against a strict server that signs with cryptography alone.

Accepted: every key type, through ``introspect()``, ``SyncIntrospector``
and the ASGI guard, with ``TokenInfo.claims`` the ``token_introspection``
object. Refused — as an ``InvalidIntrospectionResponse``, 503 from the
guard, never cached — every forgery a proxy or a broken server could send.
Key rotation refetches the JWKS once, rate-limited.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import (
    AuthorizationServerUnavailable,
    GenAuthGuard,
    Introspector,
    InvalidIntrospectionResponse,
    SyncIntrospector,
    get_token_info,
)
from genauth_guard.dev.testing import serve_in_thread

from .jose_endpoint import (
    JWT_MEDIA_TYPE,
    StrictClient,
    StrictServer,
    b64url,
    b64url_decode,
    compact,
    new_key,
    public_jwk,
)

SECRET = "rs-secret-" + "z" * 40
CLIENT = "rs-jwt"
TYP = "token-introspection+jwt"
SIGNERS = {
    "RS256": "RSA",
    "PS256": "RSA",
    "ES256": "P-256",
    "ES384": "P-384",
    "EdDSA": "Ed25519",
}
Hook = Callable[[dict[str, Any], str], tuple[str, bytes]]


@pytest.fixture(scope="module")
def signer_keys() -> dict[str, Any]:
    return {kind: new_key(kind) for kind in set(SIGNERS.values())}


@pytest.fixture(scope="module")
def strict() -> Iterator[StrictServer]:
    server = StrictServer()
    server.register(StrictClient(CLIENT, "client_secret_jwt", "HS256", SECRET.encode()))
    server.register(StrictClient("other", "client_secret_jwt", "HS256", SECRET.encode()))
    with server.running():
        yield server


@pytest.fixture
def server(strict: StrictServer, signer_keys: dict[str, Any]) -> StrictServer:
    """The strict server, reset: one RS256 key ``k-RS256`` published, answers untouched."""
    strict.published.clear()
    strict.answer_hook = None
    strict.jwks_status = 200
    strict.jwks_cache_control = "max-age=3600"
    strict.use_signing_key(signer_keys["RSA"], "RS256", "k-RS256")
    return strict


def options(server: StrictServer, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT,
        "client_secret": SECRET,
        "auth_method": "client_secret_jwt",
        "jwt_response": True,
        "jwks_uri": f"{server.issuer}/.well-known/jwks.json",
        "jwt_response_issuer": server.issuer,
        **extra,
    }


def endpoint(server: StrictServer) -> str:
    return f"{server.issuer}/token/introspection"


def guarded(introspector: Introspector) -> Any:
    async def me(request: Request) -> JSONResponse:
        info = get_token_info(request)
        assert info is not None
        return JSONResponse({"identity": request.user.identity, "claims": dict(info.claims)})

    return GenAuthGuard(Starlette(routes=[Route("/me", me)]), introspector=introspector)


# ---------------------------------------------------------------- accepted


@pytest.mark.anyio
@pytest.mark.parametrize("alg", list(SIGNERS))
async def test_a_signed_answer_is_verified_and_its_claims_are_token_introspection(
    server: StrictServer, signer_keys: dict[str, Any], alg: str
) -> None:
    server.use_signing_key(signer_keys[SIGNERS[alg]], alg, f"k-{alg}")
    token = server.mint("alice")
    async with Introspector(endpoint(server), **options(server)) as introspector:
        info = await introspector.introspect(token)
        inactive = await introspector.introspect("unknown-token")
    assert info.active and info.sub == "alice" and info.scopes == {"orders:read"}
    assert dict(info.claims) == server.tokens[token]  # the inner object, not the envelope
    assert info.iss == server.url  # the token's iss, not the answer's
    assert not inactive.active


@pytest.mark.parametrize("alg", list(SIGNERS))
def test_sync_introspector_verifies_signed_answers(
    server: StrictServer, signer_keys: dict[str, Any], alg: str
) -> None:
    server.use_signing_key(signer_keys[SIGNERS[alg]], alg, f"k-{alg}")
    with SyncIntrospector.from_discovery(
        server.issuer, CLIENT, SECRET, jwt_response=True
    ) as introspector:  # issuer and jwks_uri from discovery
        assert introspector.introspect(server.mint("bob")).sub == "bob"


@pytest.mark.parametrize("alg", list(SIGNERS))
def test_the_asgi_guard_serves_requests_with_signed_answers(
    server: StrictServer, signer_keys: dict[str, Any], alg: str
) -> None:
    server.use_signing_key(signer_keys[SIGNERS[alg]], alg, f"k-{alg}")
    token = server.mint("carol")
    app = guarded(Introspector(endpoint(server), **options(server)))
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    assert response.json()["identity"] == "carol"
    assert "token_introspection" not in response.json()["claims"]


@pytest.mark.parametrize(
    ("typ", "content_type"),
    [
        ("application/token-introspection+jwt", JWT_MEDIA_TYPE),
        ("Token-Introspection+JWT", "Application/Token-Introspection+JWT; charset=utf-8"),
    ],
)
def test_typ_and_content_type_spellings_rfc_9701_allows(
    server: StrictServer, signer_keys: dict[str, Any], typ: str, content_type: str
) -> None:
    def hook(inner: dict[str, Any], client_id: str) -> tuple[str, bytes]:
        header = {"alg": "RS256", "typ": typ, "kid": "k-RS256"}
        return content_type, compact(
            header, envelope(server, inner, client_id), signer_keys["RSA"]
        ).encode()

    server.answer_hook = hook
    with SyncIntrospector(endpoint(server), **options(server)) as introspector:
        assert introspector.introspect(server.mint("dave")).active


def test_no_kid_is_accepted_only_with_a_single_suitable_key(
    server: StrictServer, signer_keys: dict[str, Any]
) -> None:
    server.use_signing_key(signer_keys["P-256"], "ES256", None)  # published without kid
    with SyncIntrospector(endpoint(server), **options(server)) as introspector:
        assert introspector.introspect(server.mint("erin")).active  # one ES256 key in the set
    server.use_signing_key(new_key("P-256"), "ES256", None)  # now two ES256 keys
    with (
        SyncIntrospector(endpoint(server), **options(server)) as introspector,
        pytest.raises(InvalidIntrospectionResponse, match="names no kid"),
    ):
        introspector.introspect(server.mint("fay"))


# ---------------------------------------------------------------- refused


def envelope(server: StrictServer, inner: dict[str, Any], client_id: str) -> dict[str, Any]:
    return {"iss": server.issuer, "aud": client_id, "iat": int(time.time()),
            "token_introspection": inner}  # fmt: skip


def signed(
    server: StrictServer,
    key: Any,
    header: dict[str, Any] | None = None,
    claims: Callable[[dict[str, Any]], Any] | None = None,
    content_type: str = JWT_MEDIA_TYPE,
    alg: str | None = None,
) -> Hook:
    """A hook answering with ``claims(envelope)`` signed by ``key`` under ``header``."""

    def hook(inner: dict[str, Any], client_id: str) -> tuple[str, bytes]:
        body = envelope(server, inner, client_id)
        head = {"alg": "RS256", "typ": TYP, "kid": "k-RS256", **(header or {})}
        head = {name: value for name, value in head.items() if value is not None}
        payload = claims(body) if claims else body
        return content_type, compact(head, payload, key, alg).encode()

    return hook


def forgeries(server: StrictServer, key: Any) -> dict[str, Hook]:
    attacker = new_key("RSA")
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())

    def tampered(inner: dict[str, Any], client_id: str) -> tuple[str, bytes]:
        _, body = signed(server, key)(inner, client_id)
        head, payload, signature = body.decode().split(".")
        claims = json.loads(b64url_decode(payload))
        claims["token_introspection"]["sub"] = "root"
        return JWT_MEDIA_TYPE, f"{head}.{b64url(json.dumps(claims).encode())}.{signature}".encode()

    def plain(body: bytes, content_type: str) -> Hook:
        return lambda inner, client_id: (content_type, body)

    return {
        "alg none": signed(server, None, {"alg": "none"}),
        "HS256 keyed with the public key PEM": signed(server, public_pem, {"alg": "HS256"}),
        "HS256 keyed with the public JWK": signed(
            server, json.dumps(public_jwk(key)).encode(), {"alg": "HS256"}
        ),
        "typ missing": signed(server, key, {"typ": None}),
        "typ JWT": signed(server, key, {"typ": "JWT"}),
        "typ at+jwt": signed(server, key, {"typ": "at+jwt"}),
        "content type application/jwt": signed(server, key, content_type="application/jwt"),
        "plain JSON": plain(b'{"active": true, "sub": "mallory"}', "application/json"),
        "wrong iss": signed(server, key, claims=lambda c: {**c, "iss": server.url}),
        "aud another client": signed(server, key, claims=lambda c: {**c, "aud": "other"}),
        "aud missing": signed(
            server, key, claims=lambda c: {k: v for k, v in c.items() if k != "aud"}
        ),
        "claims changed after signing": tampered,
        "signed by a key in its own jwk header": signed(
            server, attacker, {"jwk": public_jwk(attacker)}
        ),
        "signed by a key its jku names": signed(
            server, attacker, {"jku": f"{server.url}/attacker/jwks.json", "kid": "k-attacker"}
        ),
        "signed by a key its x5u names": signed(server, attacker, {"x5u": "https://evil/cert"}),
        "crit header": signed(server, key, {"crit": ["exp"]}, lambda c: {**c, "exp": now + 60}),
        "unencoded payload": signed(server, key, {"b64": False, "crit": ["b64"]}),
        "token claims outside token_introspection": signed(
            server, key, claims=lambda c: {**c, "active": True, "sub": "mallory"}
        ),
        "no token_introspection": signed(
            server, key, claims=lambda c: {k: v for k, v in c.items() if k != "token_introspection"}
        ),
        "token_introspection not an object": signed(
            server, key, claims=lambda c: {**c, "token_introspection": "active"}
        ),
        "an encrypted answer (JWE)": plain(b"eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d", JWT_MEDIA_TYPE),
        "iat in the future": signed(server, key, claims=lambda c: {**c, "iat": now + 120}),
        "iat missing": signed(
            server, key, claims=lambda c: {k: v for k, v in c.items() if k != "iat"}
        ),
        "issued an hour ago (a replay)": signed(
            server, key, claims=lambda c: {**c, "iat": now - 3600}
        ),
        "expired": signed(server, key, claims=lambda c: {**c, "exp": now - 5}),
        "not valid yet": signed(server, key, claims=lambda c: {**c, "nbf": now + 120}),
        "not a JWT": plain(b"<html>proxy error</html>", JWT_MEDIA_TYPE),
        "a JSON array payload": signed(server, key, claims=lambda c: [c]),
    }


FORGERIES = list(forgeries(StrictServer(), new_key("P-256")))


@pytest.fixture(scope="module")
def guard_url(strict: StrictServer) -> Iterator[str]:
    """A guard whose introspector asks ``strict`` for signed answers (shared by the forgeries)."""
    introspector = Introspector(endpoint(strict), **options(strict))
    with serve_in_thread(guarded(introspector)) as url:
        yield url


@pytest.mark.parametrize("forgery", FORGERIES)
def test_every_forged_answer_is_refused_and_never_cached(
    server: StrictServer, signer_keys: dict[str, Any], guard_url: str, forgery: str
) -> None:
    token = server.mint("mallory", "admin")
    with SyncIntrospector(endpoint(server), **options(server)) as introspector:
        introspector.introspect(server.mint("warm-up"))  # the JWKS is fetched and the key known
        server.answer_hook = forgeries(server, signer_keys["RSA"])[forgery]
        calls = server.introspections
        for _ in range(2):
            with pytest.raises(InvalidIntrospectionResponse) as caught:
                introspector.introspect(token)
        assert server.introspections == calls + 2  # asked again: the failure was not cached
    assert token not in str(caught.value)
    with httpx.Client(base_url=guard_url) as client:
        response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503
    assert "Retry-After" in response.headers


# ---------------------------------------------------------------- the JWKS


def test_key_rotation_refetches_once_and_then_rate_limits(
    server: StrictServer, signer_keys: dict[str, Any]
) -> None:
    with SyncIntrospector(endpoint(server), **options(server)) as introspector:
        fetches = server.jwks_fetches
        for name in ("a", "b", "c"):
            assert introspector.introspect(server.mint(name)).active
        assert server.jwks_fetches == fetches + 1  # fetched once, then kept

        server.use_signing_key(signer_keys["P-256"], "ES256", "k-rotated")
        assert introspector.introspect(server.mint("after-rotation")).active
        assert server.jwks_fetches == fetches + 2  # the unknown kid refetched the set once

        server.use_signing_key(signer_keys["Ed25519"], "EdDSA", "k-rotated-again")
        with pytest.raises(InvalidIntrospectionResponse, match="no key of the JWKS has its kid"):
            introspector.introspect(server.mint("too-soon"))
        assert server.jwks_fetches == fetches + 2  # within 10 s: no refetch


def test_a_jwks_that_cannot_be_fetched_is_unavailable_and_not_remembered(
    server: StrictServer,
) -> None:
    server.jwks_status = 500
    token = server.mint("gina")
    with SyncIntrospector(endpoint(server), **options(server)) as introspector:
        with pytest.raises(AuthorizationServerUnavailable, match=r"JWKS .* answered HTTP 500"):
            introspector.introspect(token)
        server.jwks_status = 200
        assert introspector.introspect(token).active  # the failure was not kept


def test_an_unreachable_jwks_is_unavailable(server: StrictServer) -> None:
    with (
        SyncIntrospector(
            endpoint(server), **options(server, jwks_uri="http://127.0.0.1:9/jwks")
        ) as introspector,
        pytest.raises(AuthorizationServerUnavailable, match="JWKS endpoint"),
    ):
        introspector.introspect(server.mint("hal"))


def test_from_genauth_finds_the_jwks_and_issuer_where_genauth_keeps_them(
    server: StrictServer,
) -> None:
    with SyncIntrospector.from_genauth(
        CLIENT, SECRET, server.url, introspection_endpoint_auth_method="client_secret_jwt",
        jwt_response=True,
    ) as introspector:  # fmt: skip
        assert introspector._describe()["jwks_uri"] == f"{server.url}/oidc/.well-known/jwks.json"
        assert introspector.introspect(server.mint("ida")).sub == "ida"


def test_from_env_turns_signed_answers_on(server: StrictServer) -> None:
    environ = {
        "GENAUTH_APP_ID": CLIENT,
        "GENAUTH_APP_SECRET": SECRET,
        "GENAUTH_APP_HOST": server.url,
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "client_secret_jwt",
        "GENAUTH_JWT_RESPONSE": "true",
    }
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(server.mint("jo")).sub == "jo"
    wrong = {**environ, "GENAUTH_JWT_RESPONSE_ISSUER": "https://someone.else"}
    with (
        SyncIntrospector.from_env(environ=wrong) as introspector,
        pytest.raises(InvalidIntrospectionResponse, match="its iss is not the expected"),
    ):
        introspector.introspect(server.mint("kim"))
