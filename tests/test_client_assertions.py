"""client_secret_jwt and private_key_jwt (RFC 7523) against a strict server (cryptography only).

Every key type and both methods, end to end through ``introspect()``, the
ASGI guard (served by uvicorn) and ``SyncIntrospector``; a fresh assertion
per request and per retry; revocation; the audience rules; and every way a
key can be wrong, refused at construction without echoing it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import (
    ClientAuthenticationError,
    ConfigurationError,
    GenAuthGuard,
    Introspector,
    SyncIntrospector,
    get_token_info,
)
from genauth_guard.dev.testing import serve_in_thread

from .jose_endpoint import StrictClient, StrictServer, new_key, pem, private_jwk, public_jwk

SECRET = "hs-secret-" + "x" * 54  # 64 bytes: long enough for HS512 too
KINDS = {"RSA": "RS256", "P-256": "ES256", "P-384": "ES384", "Ed25519": "EdDSA"}


@dataclass(frozen=True)
class Case:
    """One way to authenticate: the client id, and the options the introspector takes."""

    client_id: str
    options: dict[str, Any]
    alg: str
    kid: str | None


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {kind: new_key(kind) for kind in KINDS}


@pytest.fixture(scope="module")
def strict(keys: dict[str, Any]) -> Iterator[StrictServer]:
    server = StrictServer()
    for kind, alg in KINDS.items():
        server.register(
            StrictClient(f"pk-{kind}", "private_key_jwt", alg, public_key=keys[kind].public_key())
        )
    server.register(
        StrictClient("pk-PS256", "private_key_jwt", "PS256", None, keys["RSA"].public_key())
    )
    server.register(StrictClient("hs-HS256", "client_secret_jwt", "HS256", SECRET.encode()))
    server.register(StrictClient("hs-HS512", "client_secret_jwt", "HS512", SECRET.encode()))
    with server.running():
        yield server


def cases(keys: dict[str, Any]) -> dict[str, Case]:
    result = {
        kind: Case(
            f"pk-{kind}",
            {
                "auth_method": "private_key_jwt",
                "client_private_key": pem(keys[kind]),
                "client_key_id": f"kid-{kind}",
            },
            alg,
            f"kid-{kind}",
        )
        for kind, alg in KINDS.items()
    }
    result["PS256"] = Case(
        "pk-PS256",
        {"auth_method": "private_key_jwt", "client_private_key": private_jwk(keys["RSA"]),
         "client_assertion_alg": "PS256"},
        "PS256",
        None,
    )  # fmt: skip
    result["HS256"] = Case(
        "hs-HS256", {"auth_method": "client_secret_jwt", "client_secret": SECRET}, "HS256", None
    )
    result["HS512"] = Case(
        "hs-HS512",
        {"auth_method": "client_secret_jwt", "client_secret": SECRET,
         "client_assertion_alg": "HS512"},
        "HS512",
        None,
    )  # fmt: skip
    return result


CASES = [*KINDS, "PS256", "HS256", "HS512"]


def options(strict: StrictServer, case: Case, **extra: Any) -> dict[str, Any]:
    return {
        "client_id": case.client_id,
        "revocation_endpoint": f"{strict.issuer}/token/revocation",
        **case.options,
        **extra,
    }


@pytest.mark.anyio
@pytest.mark.parametrize("name", CASES)
async def test_introspect_signs_a_fresh_assertion_per_call(
    strict: StrictServer, keys: dict[str, Any], name: str
) -> None:
    case = cases(keys)[name]
    endpoint = f"{strict.issuer}/token/introspection"
    first, second = strict.mint("alice"), strict.mint("bob")
    before = len(strict.assertions)
    async with Introspector(endpoint, **options(strict, case)) as introspector:
        assert (await introspector.introspect(first)).sub == "alice"
        assert (await introspector.introspect(second)).sub == "bob"
        assert (await introspector.introspect(first)).sub == "alice"  # cached: no request
    made = strict.assertions[before:]
    assert len(made) == 2
    (_, header1, claims1), (_, header2, claims2) = made
    assert header1["alg"] == header2["alg"] == case.alg
    assert header1.get("kid") == case.kid
    assert claims1["jti"] != claims2["jti"]
    assert claims1["iss"] == claims1["sub"] == case.client_id
    assert claims1["aud"] == endpoint  # no issuer known: the URL called
    assert claims1["exp"] - claims1["iat"] <= 60


@pytest.mark.parametrize("name", CASES)
def test_sync_introspector_introspects_and_revokes_with_assertions(
    strict: StrictServer, keys: dict[str, Any], name: str
) -> None:
    case = cases(keys)[name]
    token = strict.mint("carol")
    before = len(strict.assertions)
    with SyncIntrospector(
        f"{strict.issuer}/token/introspection",
        authorization_server_issuer=strict.issuer,
        **options(strict, case),
    ) as introspector:
        assert introspector.introspect(token).active
        introspector.revoke(token)
        assert not introspector.introspect(token).active
    paths = [path for path, _, _ in strict.assertions[before:]]
    assert paths == [
        "/oidc/token/introspection",
        "/oidc/token/revocation",
        "/oidc/token/introspection",
    ]
    assert {claims["aud"] for _, _, claims in strict.assertions[before:]} == {strict.issuer}


def guarded_app(introspector: Introspector) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        info = get_token_info(request)
        assert info is not None
        return JSONResponse({"identity": request.user.identity, "scope": info.scope})

    return GenAuthGuard(Starlette(routes=[Route("/me", whoami)]), introspector=introspector)  # type: ignore[return-value]


@pytest.mark.parametrize("name", CASES)
def test_the_asgi_guard_accepts_tokens_checked_with_assertions(
    strict: StrictServer, keys: dict[str, Any], name: str
) -> None:
    case = cases(keys)[name]
    token = strict.mint("dave", "orders:read")
    introspector = Introspector(f"{strict.issuer}/token/introspection", **options(strict, case))
    with serve_in_thread(guarded_app(introspector)) as url, httpx.Client(base_url=url) as client:
        ok = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        unknown = client.get("/me", headers={"Authorization": "Bearer not-a-known-token"})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {"identity": "dave", "scope": "orders:read"}
    assert unknown.status_code == 401


def test_from_genauth_takes_a_private_key_and_signs_for_the_issuer(
    strict: StrictServer, keys: dict[str, Any]
) -> None:
    token = strict.mint("erin")
    before = len(strict.assertions)
    with SyncIntrospector.from_genauth(
        "pk-P-256",
        None,
        strict.url,
        introspection_endpoint_auth_method="private_key_jwt",
        client_private_key=pem(keys["P-256"]).encode(),
    ) as introspector:
        assert introspector.auth_method == introspector.revocation_auth.method == "private_key_jwt"
        assert introspector.introspect(token).sub == "erin"
        introspector.revoke(token)
    auds = [claims["aud"] for _, _, claims in strict.assertions[before:]]
    assert auds == [strict.issuer, strict.issuer]


def test_from_discovery_picks_private_key_jwt_when_a_key_is_given(
    strict: StrictServer, keys: dict[str, Any]
) -> None:
    token = strict.mint("fay")
    with SyncIntrospector.from_discovery(
        strict.issuer, "pk-Ed25519", client_private_key=private_jwk(keys["Ed25519"])
    ) as introspector:
        assert introspector.auth_method == "private_key_jwt"
        assert introspector.introspect(token).sub == "fay"
    assert strict.assertions[-1][2]["aud"] == strict.issuer
    with SyncIntrospector.from_discovery(strict.issuer, "hs-HS256", SECRET) as by_secret:
        assert by_secret.auth_method == "client_secret_jwt"  # the only one it can do here
        assert by_secret.introspect(strict.mint("gus")).sub == "gus"


def test_from_env_reads_the_key_file(
    strict: StrictServer, keys: dict[str, Any], tmp_path: Any
) -> None:
    key_file = tmp_path / "client.pem"
    key_file.write_text(pem(keys["P-384"]))
    environ = {
        "GENAUTH_APP_ID": "pk-P-384",
        "GENAUTH_APP_HOST": strict.url,
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "private_key_jwt",
        "GENAUTH_CLIENT_PRIVATE_KEY_FILE": str(key_file),
        "GENAUTH_CLIENT_KEY_ID": "from-env",
    }
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(strict.mint("hal")).sub == "hal"
    _, header, claims = strict.assertions[-1]
    assert header["kid"] == "from-env" and header["alg"] == "ES384"
    assert claims["aud"] == strict.issuer


def test_every_retry_sends_a_new_assertion(strict: StrictServer, keys: dict[str, Any]) -> None:
    case = cases(keys)["RSA"]
    strict.fail_next = 1  # the first attempt gets a 503
    before = len(strict.assertions)
    with SyncIntrospector(
        f"{strict.issuer}/token/introspection", retries=1, retry_backoff=0.01,
        **options(strict, case),
    ) as introspector:  # fmt: skip
        assert introspector.introspect(strict.mint("ida")).active
    assert strict.fail_next == 0
    (_, _, first), (_, _, retry) = strict.assertions[before:]  # both verified: no replay
    assert first["jti"] != retry["jti"]


def test_the_audience_can_be_set_for_servers_that_want_another(
    strict: StrictServer, keys: dict[str, Any]
) -> None:
    """A server that wants its introspection URL even though its issuer is known."""
    case = cases(keys)["HS256"]
    endpoint = f"{strict.issuer}/token/introspection"
    with SyncIntrospector(
        endpoint, authorization_server_issuer=strict.issuer,
        client_assertion_audience=endpoint, **options(strict, case),
    ) as introspector:  # fmt: skip
        assert introspector.introspect(strict.mint("jo")).active
    assert strict.assertions[-1][2]["aud"] == endpoint


def test_a_key_the_server_does_not_know_is_a_client_authentication_error(
    strict: StrictServer, caplog: pytest.LogCaptureFixture
) -> None:
    other = new_key("P-256")
    material = pem(other)
    with SyncIntrospector(
        f"{strict.issuer}/token/introspection", client_id="pk-P-256",
        auth_method="private_key_jwt", client_private_key=material,
    ) as introspector, pytest.raises(ClientAuthenticationError) as caught:  # fmt: skip
        introspector.introspect(strict.mint("kim"))
    assert strict.refusals[-1] == "the signature does not verify"
    d = private_jwk(other)["d"]
    body = material.splitlines()[2]
    for text in (str(caught.value), repr(introspector), caplog.text):
        assert d not in text and body not in text


# ---------------------------------------------------------------- refused at construction


def test_bad_keys_are_refused_without_echoing_them(keys: dict[str, Any]) -> None:
    rsa_pem = pem(keys["RSA"])
    encrypted = (
        keys["RSA"]
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pw"),
        )
        .decode()
    )
    public_pem = (
        keys["RSA"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    small = new_small_rsa()
    jwk_d = private_jwk(keys["P-256"])["d"]
    bad: list[tuple[Any, str]] = [
        (encrypted, "is encrypted"),
        (public_pem, "is a public key"),
        (public_jwk(keys["P-256"]), "is a public JWK"),
        (rsa_pem.replace("A", "B", 40), "is not a readable PEM private key"),
        (rsa_pem[:200], "is not a readable PEM private key"),
        ("/etc/keys/client.pem", "not a file name"),
        ({**private_jwk(keys["P-256"]), "x": "AAAA"}, "is not a usable private JWK"),
        ('{"kty": "EC", "d": ', "not valid JSON"),
        (b"\x30\x82\x01\x00binary", "is not PEM text"),
        (12345, "must be an unencrypted PEM private key"),
        (small, "RSA key of 1024 bits"),
    ]
    for material, message in bad:
        with pytest.raises(ConfigurationError, match=message) as caught:
            Introspector(
                "https://as.example/introspect", client_id="c",
                auth_method="private_key_jwt", client_private_key=material,
            )  # fmt: skip
        text = str(caught.value)
        secret_parts = [line for line in str(material).splitlines() if len(line) > 12]
        if isinstance(material, dict):
            secret_parts += [v for v in material.values() if len(v) > 12]
        assert not [part for part in secret_parts if part in text]
        assert jwk_d not in text


def new_small_rsa() -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("RSA", {"client_assertion_alg": "ES256"}, "'ES256' does not fit the key"),
        ("P-256", {"client_assertion_alg": "ES384"}, "'ES384' does not fit the key"),
        ("P-384", {"client_assertion_alg": "RS256"}, "'RS256' does not fit the key"),
        ("Ed25519", {"client_assertion_alg": "ES256"}, "'ES256' does not fit the key"),
        ("RSA", {"client_assertion_alg": "HS256"}, "'HS256' cannot sign with a private key"),
        ("RSA", {"client_assertion_alg": "none"}, "'none' cannot sign with a private key"),
        (None, {"client_assertion_alg": "RS256"}, "'RS256' does not fit client_secret_jwt"),
        (None, {"client_secret": "short"}, "at least 32 bytes"),
        (None, {"client_secret": None}, "signs with the client_secret"),
        (None, {"client_assertion_alg": "HS512", "client_secret": "y" * 40}, "at least 64"),
    ],
)
def test_an_algorithm_that_does_not_fit_is_refused(
    keys: dict[str, Any], kind: str | None, options: dict[str, Any], message: str
) -> None:
    method = "private_key_jwt" if kind else "client_secret_jwt"
    key = {"client_private_key": pem(keys[kind])} if kind else {"client_secret": SECRET}
    with pytest.raises(ConfigurationError, match=message):
        Introspector(
            "https://as.example/introspect", client_id="c", auth_method=method,
            **{**key, **options},
        )  # fmt: skip


def test_key_options_without_a_method_that_uses_them_are_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="client_private_key is set, but no auth method"):
        Introspector(
            "https://as.example/introspect", client_id="c", client_secret="s",
            client_private_key=pem(keys["P-256"]),
        )  # fmt: skip
    with pytest.raises(ConfigurationError, match="client_key_id is set"):
        Introspector(
            "https://as.example/introspect", client_id="c", client_secret=SECRET,
            auth_method="client_secret_jwt", client_key_id="k1",
        )  # fmt: skip


def test_from_env_reports_a_bad_key_file_by_name(tmp_path: Any, keys: dict[str, Any]) -> None:
    base = {
        "GENAUTH_APP_ID": "app",
        "GENAUTH_APP_HOST": "https://example.genauth.ai",
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "private_key_jwt",
    }
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(ConfigurationError) as caught:
        Introspector.from_env(environ={**base, "GENAUTH_CLIENT_PRIVATE_KEY_FILE": missing})
    assert "GENAUTH_CLIENT_PRIVATE_KEY_FILE=" in str(caught.value)
    assert "cannot be read (FileNotFoundError" in str(caught.value)
    public = tmp_path / "public.pem"
    public.write_bytes(
        keys["RSA"]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ConfigurationError) as caught:
        Introspector.from_env(environ={**base, "GENAUTH_CLIENT_PRIVATE_KEY_FILE": str(public)})
    assert "the key in GENAUTH_CLIENT_PRIVATE_KEY_FILE is a public key" in str(caught.value)
    with pytest.raises(ConfigurationError, match="needs the client's private key"):
        Introspector.from_env(environ=base)


def test_no_key_material_in_reprs(keys: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    jwk = private_jwk(keys["RSA"])
    introspector = Introspector(
        "https://as.example/introspect", client_id="c", auth_method="private_key_jwt",
        client_private_key=jwk, client_key_id="k1",
    )  # fmt: skip
    hs = Introspector(
        "https://as.example/introspect", client_id="c", auth_method="client_secret_jwt",
        client_secret=SECRET,
    )  # fmt: skip
    texts = [
        repr(introspector), repr(introspector.auth), str(introspector._describe()),
        repr(hs), repr(hs.auth), str(hs._describe()), caplog.text,
    ]  # fmt: skip
    for text in texts:
        for member in ("d", "p", "q", "dp", "dq", "qi"):
            assert jwk[member] not in text
        assert SECRET not in text
    assert "k1" in repr(introspector.auth) and "RS256" in repr(introspector.auth)
