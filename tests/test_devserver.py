"""The dev authorization server over HTTP: GenAuth's paths, RFC 6749/7662/7009 behaviour."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from genauth_guard._client_auth import basic_credentials
from genauth_guard.dev.server import DevAuthServer, DevClient

from .conftest import RunningAuthServer

POST = {"client_id": "post-client", "client_secret": "post-secret"}
BASIC = {"Authorization": basic_credentials("basic-client", "basic:secret with spaces")}
PUBLIC = {"client_id": "public-client"}


@pytest.fixture
def http(auth_server: RunningAuthServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_server.url) as client:
        yield client


def introspect(
    http: httpx.Client, token: str, protocol: str = "oidc", **auth: str
) -> httpx.Response:
    return http.post(f"/{protocol}/token/introspection", data={"token": token, **(auth or POST)})


def is_active(http: httpx.Client, token: str) -> bool:
    response = introspect(http, token)
    assert response.status_code == 200
    active = response.json()["active"]
    assert isinstance(active, bool)
    return active


# ---------------------------------------------------------------- introspection


@pytest.mark.parametrize("protocol", ["oidc", "oauth"])
def test_active_answer_is_shaped_like_genauths(
    auth_server: RunningAuthServer, http: httpx.Client, protocol: str
) -> None:
    token = auth_server.server.mint("alice", "orders:read profile", username="al")
    before = time.time()
    response = introspect(http, token, protocol)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["active"] is True
    assert body["sub"] == "alice"
    assert body["scope"] == "orders:read profile"
    assert body["client_id"] == "post-client"
    assert body["token_type"] == "Bearer"
    assert body["username"] == "al"
    assert body["iss"] == auth_server.url  # the app host, without /oidc, as GenAuth answers
    assert before - 1 <= body["iat"] <= time.time()
    assert body["exp"] - body["iat"] == 3600
    assert isinstance(body["jti"], str) and body["jti"]


@pytest.mark.parametrize("kind", ["unknown", "revoked", "expired", "not yet valid"])
def test_inactive_answers_say_only_active_false(
    auth_server: RunningAuthServer, http: httpx.Client, kind: str
) -> None:
    server = auth_server.server
    if kind == "unknown":
        token = "never-issued"
    elif kind == "revoked":
        token = server.mint("alice")
        server.revoke(token)
    elif kind == "expired":
        token = server.mint("alice", expires_in=0)
    else:
        token = server.mint("alice", not_before=time.time() + 60)
    response = introspect(http, token)
    assert response.status_code == 200
    assert response.json() == {"active": False}


def test_clock_offset_moves_the_servers_clock(auth_server: RunningAuthServer) -> None:
    server = DevAuthServer([DevClient("c", "s")])
    token = server.mint("alice", expires_in=30)
    assert server.answer(token)["active"] is True
    server.clock_offset = 31
    assert server.answer(token) == {"active": False}


def test_introspection_counts_only_authenticated_calls(
    auth_server: RunningAuthServer, http: httpx.Client
) -> None:
    token = auth_server.server.mint("alice")
    before = auth_server.server.introspection_calls
    active_before = auth_server.server.introspected["active"]
    assert is_active(http, token)
    assert (
        introspect(http, token, client_id="post-client", client_secret="wrong").status_code == 401
    )
    assert auth_server.server.introspection_calls == before + 1
    assert auth_server.server.introspected["active"] == active_before + 1


@pytest.mark.parametrize(
    ("headers", "form", "accepted"),
    [
        ({}, POST, True),
        (BASIC, {}, True),
        ({}, PUBLIC, True),
        # each client must use exactly the method it is registered with
        (BASIC, {"client_secret": "x"}, False),
        ({}, {"client_id": "post-client"}, False),
        ({"Authorization": basic_credentials("post-client", "post-secret")}, {}, False),
        ({}, {"client_id": "basic-client", "client_secret": "basic:secret with spaces"}, False),
        ({}, {"client_id": "public-client", "client_secret": ""}, False),
        ({"Authorization": basic_credentials("public-client", "")}, {}, False),
        # wrong or unknown credentials, no credentials, a garbled header
        ({}, {"client_id": "post-client", "client_secret": "post-secre"}, False),
        ({}, {"client_id": "nobody", "client_secret": "x"}, False),
        ({}, {}, False),
        ({"Authorization": "Basic !!!"}, {}, False),
        ({"Authorization": "Bearer abc"}, POST, False),
        # Basic credentials and a different client_id in the form
        (BASIC, {"client_id": "post-client"}, False),
    ],
)
def test_introspection_enforces_each_clients_auth_method(
    auth_server: RunningAuthServer,
    http: httpx.Client,
    headers: dict[str, str],
    form: dict[str, str],
    accepted: bool,
) -> None:
    token = auth_server.server.mint("alice")
    response = http.post(
        "/oidc/token/introspection", data={"token": token, **form}, headers=headers
    )
    if accepted:
        assert response.status_code == 200
        assert response.json()["active"] is True
    else:
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
        assert response.headers["www-authenticate"].startswith("Basic ")
        assert "active" not in response.json()


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        ("client_id=post-client&client_secret=post-secret", "application/x-www-form-urlencoded"),
        (
            '{"token": "t", "client_id": "post-client", "client_secret": "post-secret"}',
            "application/json",
        ),
        (
            "token=a&token=b&client_id=post-client&client_secret=post-secret",
            "application/x-www-form-urlencoded",
        ),
        (
            "token=%FF&client_id=post-client&client_secret=post-secret",
            "application/x-www-form-urlencoded",
        ),
    ],
    ids=["no token", "json body", "token twice", "not utf-8"],
)
def test_malformed_introspection_requests_are_invalid_request(
    http: httpx.Client, content: str, content_type: str
) -> None:
    response = http.post(
        "/oidc/token/introspection", content=content, headers={"Content-Type": content_type}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["error_description"]


def test_oversized_form_is_refused(http: httpx.Client) -> None:
    response = http.post("/oidc/token/introspection", data={"token": "x" * 70_000, **POST})
    assert response.status_code == 413


# ---------------------------------------------------------------- revocation (RFC 7009)


def test_revocation_makes_the_token_inactive(
    auth_server: RunningAuthServer, http: httpx.Client
) -> None:
    token = auth_server.server.mint("alice", client_id="basic-client")
    response = http.post(
        "/oauth/token/revocation",
        data={"token": token, "token_type_hint": "refresh_token"},  # a hint, not a filter
        headers=BASIC,
    )
    assert response.status_code == 200
    assert response.content == b""
    assert not is_active(http, token)
    again = http.post("/oidc/token/revocation", data={"token": token}, headers=BASIC)
    assert again.status_code == 200


def test_revoking_an_unknown_token_is_200(http: httpx.Client) -> None:
    response = http.post("/oidc/token/revocation", data={"token": "never-issued", **POST})
    assert response.status_code == 200


def test_a_client_cannot_revoke_another_clients_token(
    auth_server: RunningAuthServer, http: httpx.Client
) -> None:
    token = auth_server.server.mint("alice", client_id="post-client")
    response = http.post("/oidc/token/revocation", data={"token": token, **PUBLIC})
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert is_active(http, token)


def test_revocation_needs_client_authentication(
    auth_server: RunningAuthServer, http: httpx.Client
) -> None:
    token = auth_server.server.mint("alice")
    response = http.post("/oidc/token/revocation", data={"token": token})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert is_active(http, token)


# ---------------------------------------------------------------- token endpoint (RFC 6749)


@pytest.mark.parametrize(
    ("headers", "form", "client_id"),
    [({}, POST, "post-client"), (BASIC, {}, "basic-client")],
)
def test_client_credentials_grant(
    http: httpx.Client, headers: dict[str, str], form: dict[str, str], client_id: str
) -> None:
    response = http.post(
        "/oidc/token",
        data={"grant_type": "client_credentials", "scope": "orders:read orders:write", **form},
        headers=headers,
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "orders:read orders:write"
    assert "refresh_token" not in body  # RFC 6749 4.4.3
    answer = introspect(http, body["access_token"]).json()
    assert answer["active"] is True
    assert answer["client_id"] == client_id
    assert "sub" not in answer  # a client acting for itself
    assert answer["scope"] == "orders:read orders:write"


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({**POST}, 400, "invalid_request"),
        ({**POST, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({**POST, "grant_type": "client_credentials", "scope": 'bad"scope'}, 400, "invalid_scope"),
        ({**PUBLIC, "grant_type": "client_credentials"}, 400, "unauthorized_client"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
    ],
    ids=["no grant_type", "other grant", "bad scope", "public client", "no client"],
)
def test_token_endpoint_errors(
    http: httpx.Client, form: dict[str, str], status: int, error: str
) -> None:
    response = http.post("/oauth/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


# ---------------------------------------------------------------- POST /dev/tokens


def test_dev_tokens_mints_for_any_sub_and_scope(http: httpx.Client) -> None:
    response = http.post(
        "/dev/tokens",
        data={"sub": "dave", "scope": "orders:read", "expires_in": "120", "username": "d", **POST},
    )
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 120
    answer = introspect(http, body["access_token"]).json()
    assert answer["sub"] == "dave"
    assert answer["username"] == "d"
    assert answer["scope"] == "orders:read"
    assert answer["client_id"] == "post-client"
    assert answer["exp"] - answer["iat"] == 120


def test_dev_tokens_authenticates_the_client_like_the_token_endpoint(http: httpx.Client) -> None:
    anonymous = http.post("/dev/tokens", data={"sub": "dave"})
    assert anonymous.status_code == 401
    public = http.post("/dev/tokens", data={"sub": "dave", **PUBLIC})
    assert public.status_code == 200  # a public client authenticates with its id alone
    bad = http.post("/dev/tokens", data={"sub": "dave", "expires_in": "soon", **POST})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_request"


# ---------------------------------------------------------------- discovery


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/oidc/.well-known/openid-configuration", "oidc"),
        ("/oauth/.well-known/openid-configuration", "oauth"),
        ("/.well-known/oauth-authorization-server/oidc", "oidc"),
    ],
)
def test_discovery_names_the_endpoints(
    auth_server: RunningAuthServer, http: httpx.Client, path: str, protocol: str
) -> None:
    response = http.get(path)
    assert response.status_code == 200
    doc = response.json()
    base = f"{auth_server.url}/{protocol}"
    assert doc["issuer"] == base
    assert doc["token_endpoint"] == f"{base}/token"
    assert doc["introspection_endpoint"] == f"{base}/token/introspection"
    assert doc["revocation_endpoint"] == f"{base}/token/revocation"
    assert doc["jwks_uri"] == f"{auth_server.url}/oidc/.well-known/jwks.json"
    assert doc["introspection_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    # every endpoint it names is served
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert http.post(doc[name], data=POST).status_code != 404
    [key] = http.get(doc["jwks_uri"]).json()["keys"]  # the ID tokens' RS256 key
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and "d" not in key


def test_unknown_protocol_discovery_is_404(http: httpx.Client) -> None:
    assert http.get("/.well-known/oauth-authorization-server/saml").status_code == 404


# ---------------------------------------------------------------- Python API


def test_running_sets_the_issuer_and_serves() -> None:
    server = DevAuthServer([DevClient("c", "s", "client_secret_basic")])
    with server.running() as url:
        assert server.issuer == url
        assert server.endpoint("revocation", "oauth") == f"{url}/oauth/token/revocation"
        token = server.mint("alice")
        response = httpx.post(
            server.endpoint(),
            data={"token": token},
            headers={"Authorization": basic_credentials("c", "s")},
        )
        assert response.json()["iss"] == url
    with pytest.raises(httpx.ConnectError):
        httpx.post(server.endpoint(), data={"token": token})


def test_default_client_gets_a_random_secret() -> None:
    first, second = DevAuthServer(), DevAuthServer()
    assert first.client.client_id == "dev-client"
    assert first.client.client_secret and len(first.client.client_secret) >= 32
    assert first.client.client_secret != second.client.client_secret
    assert first.client.client_secret not in repr(first.client)


def test_tokens_are_opaque_unique_and_never_look_like_options() -> None:
    server = DevAuthServer([DevClient("c", "s")])
    tokens = {server.mint("alice") for _ in range(500)}
    assert len(tokens) == 500
    assert not any(t.startswith("-") for t in tokens)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clients": []},
        {"clients": [DevClient("c", None, "client_secret_post")]},
        {"clients": [DevClient("c", "s", "private_key_jwt")]},  # type: ignore[arg-type]
        {"token_lifetime": 0},
    ],
    ids=["no client", "confidential without secret", "unknown method", "zero lifetime"],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        DevAuthServer(**kwargs)  # type: ignore[arg-type]


def test_mint_refuses_scopes_that_cannot_be_sent() -> None:
    server = DevAuthServer([DevClient("c", "s")])
    with pytest.raises(ValueError, match="scope"):
        server.mint("alice", ["orders:read", 'a"b'])
