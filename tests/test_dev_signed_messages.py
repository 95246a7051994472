"""The dev server speaks signed messages: it checks client assertions and signs RFC 9701 answers.

Each key type and both methods, end to end through ``introspect()``, the
ASGI guard and ``SyncIntrospector``, against ``DevAuthServer`` over HTTP;
the dev server refuses replays and assertions for someone else; its signed
answers verify with its published JWKS; ``genauth-guard dev-server`` makes
a client key pair and says how to use it.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Iterator
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
    GenAuthGuard,
    Introspector,
    SyncIntrospector,
    get_token_info,
)
from genauth_guard.dev.server import DevAuthServer, DevClient
from genauth_guard.dev.testing import serve_in_thread

from .jose_endpoint import new_key, pem, private_jwk, public_jwk

SECRET = "dev-hs-secret-" + "q" * 40
KINDS = ("RSA", "P-256", "P-384", "Ed25519")
CASES = (*KINDS, "client_secret_jwt")


@pytest.fixture(scope="module")
def keys() -> dict[str, Any]:
    return {kind: new_key(kind) for kind in KINDS}


def public_pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def dev(keys: dict[str, Any]) -> Iterator[DevAuthServer]:
    clients = [
        DevClient(
            f"pk-{kind}",
            None,
            "private_key_jwt",
            # PEM for some, a public JWK for the others: both register a key
            client_public_key=public_pem(keys[kind]) if i % 2 else public_jwk(keys[kind]),
        )
        for i, kind in enumerate(KINDS)
    ]
    clients.append(DevClient("hs-client", SECRET, "client_secret_jwt"))
    server = DevAuthServer(clients)
    with server.running():
        yield server


def genauth_args(dev: DevAuthServer, keys: dict[str, Any], case: str) -> dict[str, Any]:
    if case == "client_secret_jwt":
        return {
            "app_id": "hs-client",
            "secret": SECRET,
            "introspection_endpoint_auth_method": "client_secret_jwt",
        }
    return {
        "app_id": f"pk-{case}",
        "secret": None,
        "introspection_endpoint_auth_method": "private_key_jwt",
        "client_private_key": pem(keys[case]) if case != "P-384" else private_jwk(keys[case]),
    }


def client_of(args: dict[str, Any]) -> str:
    return str(args["app_id"])


@pytest.mark.anyio
@pytest.mark.parametrize("case", CASES)
async def test_introspect_and_revoke_with_assertions_and_signed_answers(
    dev: DevAuthServer, keys: dict[str, Any], case: str
) -> None:
    args = genauth_args(dev, keys, case)
    token = dev.mint("alice", "orders:read", client_id=client_of(args))
    async with Introspector.from_genauth(
        app_host=dev.issuer, jwt_response=True, **args
    ) as introspector:
        info = await introspector.introspect(token)
        assert info.sub == "alice" and info.scopes == {"orders:read"}
        assert info.claims["iss"] == dev.issuer  # GenAuth's token iss, inside the signed answer
        await introspector.revoke(token)
        assert not (await introspector.introspect(token)).active


@pytest.mark.parametrize("case", CASES)
def test_sync_introspector_with_the_dev_server(
    dev: DevAuthServer, keys: dict[str, Any], case: str
) -> None:
    args = genauth_args(dev, keys, case)
    key = {k: v for k, v in args.items() if k == "client_private_key"}
    with SyncIntrospector.from_discovery(
        f"{dev.issuer}/oidc",
        client_of(args),
        args["secret"],
        jwt_response=True,
        **key,
    ) as introspector:
        assert introspector.auth_method == args["introspection_endpoint_auth_method"]
        token = dev.mint("bob", client_id=client_of(args))
        assert introspector.introspect(token).sub == "bob"
        introspector.revoke(token)
        assert not introspector.introspect(token).active


@pytest.mark.parametrize("case", CASES)
def test_the_asgi_guard_with_the_dev_server(
    dev: DevAuthServer, keys: dict[str, Any], case: str
) -> None:
    args = genauth_args(dev, keys, case)

    async def me(request: Request) -> JSONResponse:
        info = get_token_info(request)
        assert info is not None
        return JSONResponse({"identity": request.user.identity, "scope": info.scope})

    introspector = Introspector.from_genauth(app_host=dev.issuer, jwt_response=True, **args)
    app = GenAuthGuard(Starlette(routes=[Route("/me", me)]), introspector=introspector)
    token = dev.mint("carol", "orders:read", client_id=client_of(args))
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        ok = client.get("/me", headers={"Authorization": f"Bearer {token}"})
        bad = client.get("/me", headers={"Authorization": "Bearer unknown-token"})
    assert ok.status_code == 200 and ok.json() == {"identity": "carol", "scope": "orders:read"}
    assert bad.status_code == 401


def test_the_dev_server_refuses_replays_and_foreign_assertions(
    dev: DevAuthServer, keys: dict[str, Any]
) -> None:
    introspector = SyncIntrospector.from_genauth(
        app_host=dev.issuer, **genauth_args(dev, keys, "P-256")
    )
    elsewhere = SyncIntrospector.from_genauth(
        app_host=dev.issuer,
        client_assertion_audience="https://elsewhere.example/oidc",
        **genauth_args(dev, keys, "P-256"),
    )
    endpoint = introspector.introspection_endpoint
    _, fields = introspector.auth.apply(endpoint)
    form = {**fields, "token": dev.mint("dave")}
    with httpx.Client() as client:
        first = client.post(endpoint, data=form)
        replay = client.post(endpoint, data=form)
        _, other = elsewhere.auth.apply(endpoint)
        foreign = client.post(endpoint, data={**other, "token": "t"})
        stolen = client.post(endpoint, data={**fields, "client_id": "pk-RSA", "token": "t"})
        with_secret = client.post(endpoint, data={**fields, "client_secret": "x", "token": "t"})
    introspector.close()
    elsewhere.close()
    assert first.status_code == 200 and first.json()["active"] is True
    for response, reason in (
        (replay, "was used before"),
        (foreign, "aud must be this server's issuer or the URL called"),
        (stolen, "client_assertion refused"),
        (with_secret, "more than one client authentication method"),
    ):
        assert response.status_code == 401, reason
        assert response.json()["error"] == "invalid_client"
        assert reason in response.json()["error_description"]


def test_a_key_the_dev_server_does_not_know_is_refused(dev: DevAuthServer) -> None:
    with (
        SyncIntrospector.from_genauth(
            "pk-P-256", None, dev.issuer, introspection_endpoint_auth_method="private_key_jwt",
            client_private_key=pem(new_key("P-256")),
        ) as introspector,
        pytest.raises(ClientAuthenticationError),
    ):  # fmt: skip
        introspector.introspect(dev.mint("erin"))


def test_a_client_that_must_sign_is_refused_with_a_secret(dev: DevAuthServer) -> None:
    with (
        SyncIntrospector.from_genauth("hs-client", SECRET, dev.issuer) as introspector,
        pytest.raises(ClientAuthenticationError),
    ):
        introspector.introspect(dev.mint("fay"))


@pytest.mark.parametrize(
    "client",
    [
        DevClient("pk", None, "private_key_jwt"),
        DevClient("pk", None, "private_key_jwt", client_public_key="not a key"),
        DevClient("pk", None, "private_key_jwt", client_public_key={"kty": "oct", "k": "AA"}),
        DevClient("hs", None, "client_secret_jwt"),
    ],
    ids=["no key", "not PEM", "symmetric JWK", "no secret"],
)
def test_a_signed_method_client_without_its_key_is_refused(client: DevClient) -> None:
    with pytest.raises(ValueError, match="client"):
        DevAuthServer([client])


def test_the_dev_server_generates_a_client_key_pair_and_says_how_to_use_it(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from genauth_guard.dev._servers import build_dev_server, client_key_lines

    path = tmp_path / "client-key.pem"
    args = argparse.Namespace(
        config=None, client_id="signing-client", client_secret=None,
        auth_method="private_key_jwt", redirect_uri=None, post_logout_redirect_uri=None,
        token_lifetime=None, auto_approve=None, client_key_file=str(path),
    )  # fmt: skip
    server = build_dev_server(args)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = "\n".join(client_key_lines(args))
    assert f"GENAUTH_CLIENT_PRIVATE_KEY_FILE={path}" in text
    assert "GENAUTH_INTROSPECTION_AUTH_METHOD=private_key_jwt" in text
    assert "PRIVATE KEY" not in text  # the key stays in its file
    again = build_dev_server(args)  # the same file: the same key, not a new one
    assert again.clients["signing-client"].client_public_key == (
        server.clients["signing-client"].client_public_key
    )
    with server.running():
        environ = {
            "GENAUTH_APP_ID": "signing-client",
            "GENAUTH_APP_HOST": server.issuer,
            "GENAUTH_INTROSPECTION_AUTH_METHOD": "private_key_jwt",
            "GENAUTH_CLIENT_PRIVATE_KEY_FILE": str(path),
            "GENAUTH_JWT_RESPONSE": "yes",
        }
        with SyncIntrospector.from_env(environ=environ) as introspector:
            token = server.mint("gina", client_id="signing-client")
            assert introspector.introspect(token).sub == "gina"


def test_a_config_file_registers_a_private_key_jwt_client(
    tmp_path: Any, keys: dict[str, Any]
) -> None:
    path = tmp_path / "dev.toml"
    path.write_text(
        '[[clients]]\nclient_id = "from-file"\nauth_method = "private_key_jwt"\n'
        f'client_public_key = """\n{public_pem(keys["P-256"])}"""\n'
    )
    server = DevAuthServer.from_config(path)
    with (
        server.running(),
        SyncIntrospector.from_genauth(
            "from-file", None, server.issuer, introspection_endpoint_auth_method="private_key_jwt",
            client_private_key=pem(keys["P-256"]),
        ) as introspector,
    ):  # fmt: skip
        assert introspector.introspect(server.mint("hal", client_id="from-file")).sub == "hal"
