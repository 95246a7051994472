"""from_genauth and from_env against the dev server, which serves GenAuth's paths over HTTP."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
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
from genauth_guard._environment import ENV_VARIABLES
from genauth_guard._genauth import normalize_app_host
from genauth_guard.dev.server import DevClient
from genauth_guard.dev.testing import serve_in_thread

from .conftest import CLIENTS, RunningAuthServer

CREDENTIALS = {client.auth_method: client for client in CLIENTS}
README = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def genauth_env(server: RunningAuthServer, **variables: str) -> dict[str, str]:
    """The environment of a deployment of the post-client application."""
    return {
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
        "GENAUTH_APP_HOST": server.url,
        **variables,
    }


# ---------------------------------------------------------------- from_genauth over HTTP


@pytest.mark.anyio
@pytest.mark.parametrize("protocol", ["oidc", "oauth"])
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
async def test_from_genauth_works_for_each_protocol_and_auth_method(
    auth_server: RunningAuthServer, protocol: str, method: str
) -> None:
    client = CREDENTIALS[method]
    token = auth_server.server.mint("alice", "orders:read")
    introspector = Introspector.from_genauth(
        app_id=client.client_id,
        secret=client.client_secret,
        app_host=auth_server.url + "/",  # GenAuth says no trailing slash; we forgive it
        protocol=protocol,
        introspection_endpoint_auth_method=method,
    )
    async with introspector:
        assert introspector.introspection_endpoint == auth_server.endpoint(protocol)
        assert introspector.revocation_endpoint == (
            f"{auth_server.url}/{protocol}/token/revocation"
        )
        info = await introspector.introspect(token)
        assert (await introspector.introspect("never-issued")).active is False
    assert info.active
    assert info.sub == "alice"
    assert info.scopes == {"orders:read"}


@pytest.mark.parametrize("protocol", ["oidc", "oauth"])
@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic", "none"])
def test_sync_from_genauth_works_for_each_protocol_and_auth_method(
    auth_server: RunningAuthServer, protocol: str, method: str
) -> None:
    client = CREDENTIALS[method]
    token = auth_server.server.mint("bob", "reports:read")
    with SyncIntrospector.from_genauth(
        client.client_id, client.client_secret, auth_server.url, protocol, method
    ) as introspector:
        assert isinstance(introspector, SyncIntrospector)
        info = introspector.introspect(token)
    assert info.active and info.sub == "bob"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("client_id", "secret", "method"),
    [
        ("post-client", "wrong-secret", "client_secret_post"),
        ("post-client", "post-secret", "client_secret_basic"),  # right secret, wrong method
        ("basic-client", "basic:secret with spaces", "client_secret_post"),
    ],
)
async def test_wrong_secret_or_method_says_what_to_fix(
    auth_server: RunningAuthServer, client_id: str, secret: str, method: str
) -> None:
    token = auth_server.server.mint("alice")
    async with Introspector.from_genauth(
        client_id, secret, auth_server.url, introspection_endpoint_auth_method=method
    ) as introspector:
        with pytest.raises(ClientAuthenticationError) as caught:
            await introspector.introspect(token)
    message = str(caught.value)
    assert caught.value.status_code == 401
    assert "rejected the client credentials" in message
    assert "app_id/secret" in message
    assert "introspection_endpoint_auth_method" in message
    assert secret not in message and token not in message


async def whoami(request: Request) -> JSONResponse:
    info = get_token_info(request)
    return JSONResponse({"sub": info.sub if info else None})


@pytest.fixture(scope="module")
def guarded_apps(auth_server: RunningAuthServer) -> Iterator[dict[str, str]]:
    """Two real servers behind GenAuthGuard: one with the right secret, one with a wrong one."""
    urls: dict[str, str] = {}
    with (
        serve_in_thread(
            GenAuthGuard(
                Starlette(routes=[Route("/me", whoami)]),
                introspector=Introspector.from_genauth(
                    "post-client", "post-secret", auth_server.url
                ),
            )
        ) as right,
        serve_in_thread(
            GenAuthGuard(
                Starlette(routes=[Route("/me", whoami)]),
                introspector=Introspector.from_genauth("post-client", "oops", auth_server.url),
            )
        ) as wrong,
    ):
        urls["right"], urls["wrong"] = right, wrong
        yield urls


def test_wrong_credentials_are_503_at_the_middleware(
    auth_server: RunningAuthServer, guarded_apps: dict[str, str]
) -> None:
    token = auth_server.server.mint("alice")
    headers = {"Authorization": f"Bearer {token}"}
    ok = httpx.get(guarded_apps["right"] + "/me", headers=headers)
    assert ok.status_code == 200 and ok.json() == {"sub": "alice"}

    failed = httpx.get(guarded_apps["wrong"] + "/me", headers=headers)
    assert failed.status_code == 503
    assert int(failed.headers["retry-after"]) >= 1
    assert "www-authenticate" not in failed.headers  # not the token's fault
    assert token not in failed.text


def test_a_repeating_failure_is_logged_once_and_the_recovery_once(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A rotated secret fails every request: one WARNING, DEBUG after, INFO when it works again."""
    server = auth_server.server
    original = server.clients["post-client"]
    tokens = [server.mint(f"user-{n}") for n in range(4)]
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    with SyncIntrospector.from_genauth("post-client", "post-secret", auth_server.url) as guard:
        server.clients["post-client"] = DevClient("post-client", "rotated", "client_secret_post")
        try:
            for token in tokens[:3]:
                with pytest.raises(ClientAuthenticationError):
                    guard.introspect(token)
        finally:
            server.clients["post-client"] = original
        assert guard.introspect(tokens[3]).active

    records = [r for r in caplog.records if r.name == "genauth_guard"]
    failures = [r for r in records if r.getMessage().startswith("introspection failed")]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert all("rejected the client credentials" in r.getMessage() for r in failures)
    assert sum(r.levelno >= logging.WARNING for r in records) == 1
    recovered = [r for r in records if r.levelno == logging.INFO]
    assert len(recovered) == 1 and "works again" in recovered[0].getMessage()
    assert not any(t in caplog.text for t in tokens)
    assert "post-secret" not in caplog.text and "rotated" not in caplog.text


# ---------------------------------------------------------------- from_genauth validation


@pytest.mark.parametrize(
    ("app_host", "expected"),
    [
        ("https://example.genauth.ai", "https://example.genauth.ai"),
        ("https://example.genauth.ai/", "https://example.genauth.ai"),
        ("  https://Example.GenAuth.ai//  ", "https://example.genauth.ai"),
        ("https://example.genauth.ai:8443/", "https://example.genauth.ai:8443"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://localhost:8000/", "http://localhost:8000"),
        ("http://[::1]:8000", "http://[::1]:8000"),
    ],
)
def test_app_host_is_normalised(app_host: str, expected: str) -> None:
    assert normalize_app_host(app_host) == expected


@pytest.mark.parametrize(
    ("app_host", "message"),
    [
        ("example.genauth.ai", "app_host='example.genauth.ai' must be an absolute https:// URL"),
        ("ftp://example.genauth.ai", "must be an absolute https:// URL"),
        ("http://example.genauth.ai", "plain http"),
        ("https://example.genauth.ai/oidc", "drop the path '/oidc' and pass protocol='oidc'"),
        ("https://example.genauth.ai/api/v2", "drop the path '/api/v2'"),
        ("https://example.genauth.ai/?x=1", "must not have a ?query"),
        ("https://example.genauth.ai/#top", "must not have a #fragment"),
        ("https://user:pw@example.genauth.ai", "must not carry credentials"),
        ("", "app_host is required"),
    ],
)
def test_a_wrong_app_host_names_the_option(app_host: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Introspector.from_genauth("app", "secret", app_host)


def test_plain_http_is_allowed_when_asked_for() -> None:
    introspector = SyncIntrospector.from_genauth(
        "app", "secret", "http://auth.internal", allow_insecure_http=True
    )
    assert introspector.introspection_endpoint == "http://auth.internal/oidc/token/introspection"
    introspector.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"protocol": "oid"}, "protocol='oid' is not a GenAuth protocol; use one of oidc, oauth."),
        ({"protocol": "OIDC"}, "protocol='OIDC' is not a GenAuth protocol"),
        (
            {"introspection_endpoint_auth_method": "basic"},
            "introspection_endpoint_auth_method='basic' is not supported; use one of "
            "client_secret_post, client_secret_basic, none, client_secret_jwt, private_key_jwt.",
        ),
        (
            {"revocation_endpoint_auth_method": "private_key_jwt"},
            "revocation_endpoint_auth_method='private_key_jwt' needs the client's private key",
        ),
        ({"secret": None}, "secret is not set: introspection_endpoint_auth_method="),
        ({"secret": ""}, "secret is not set"),
        (
            {"secret": None, "introspection_endpoint_auth_method": "none",
             "revocation_endpoint_auth_method": "client_secret_basic"},
            "secret is not set: revocation_endpoint_auth_method='client_secret_basic'",
        ),
        ({"app_id": ""}, "app_id is not set"),
        ({"cache_ttl": -1}, "cache_ttl=-1 must be a number of seconds"),
    ],
)  # fmt: skip
def test_wrong_genauth_options_name_the_option(options: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "app_id": "app",
        "secret": "secret",
        "app_host": "https://example.genauth.ai",
        **options,
    }
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Introspector.from_genauth(**arguments)  # type: ignore[arg-type]


def test_a_public_client_needs_no_secret_and_revokes_the_same_way() -> None:
    introspector = Introspector.from_genauth(
        "app", None, "https://example.genauth.ai", introspection_endpoint_auth_method="none"
    )
    assert introspector.auth_method == "none"
    assert introspector.revocation_auth.method == "none"


def test_tuning_options_and_repr_without_secret() -> None:
    introspector = SyncIntrospector.from_genauth(
        "app", "s3cr3t-value", "https://example.genauth.ai", "oauth", cache_ttl=30, timeout=2
    )
    assert introspector.cache.ttl == 30 and introspector.timeout == 2
    assert "s3cr3t-value" not in repr(introspector)
    assert "s3cr3t-value" not in repr(introspector.auth)
    assert "s3cr3t-value" not in str(introspector._describe())
    introspector.close()


# ---------------------------------------------------------------- from_env


@pytest.mark.anyio
async def test_from_env_with_a_full_environment(auth_server: RunningAuthServer) -> None:
    environ = {
        "GENAUTH_APP_ID": "basic-client",
        "GENAUTH_APP_SECRET": "basic:secret with spaces",
        "GENAUTH_APP_HOST": auth_server.url,
        "GENAUTH_PROTOCOL": "oauth",
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "client_secret_basic",
        "GENAUTH_REVOCATION_AUTH_METHOD": "client_secret_basic",
        "GENAUTH_CACHE_TTL": "120",
        "GENAUTH_NEGATIVE_CACHE_TTL": "0",
        "GENAUTH_CACHE_MAXSIZE": "500",
        "GENAUTH_TIMEOUT": "2.5",
        "GENAUTH_LEEWAY": "1",
        "GENAUTH_ALLOW_INSECURE_HTTP": "no",
        "UNRELATED": "ignored",
    }
    token = auth_server.server.mint("carol", "a b", client_id="basic-client")
    async with Introspector.from_env(environ=environ) as introspector:
        assert introspector.introspection_endpoint == auth_server.endpoint("oauth")
        assert introspector.auth_method == "client_secret_basic"
        assert introspector.cache.ttl == 120
        assert introspector.cache.negative_ttl == 0
        assert introspector.timeout == 2.5 and introspector.leeway == 1
        info = await introspector.introspect(token)
        assert info.sub == "carol" and info.scopes == {"a", "b"}
        await introspector.revoke(token)
        assert not (await introspector.introspect(token)).active


def test_from_env_with_a_partial_environment_takes_from_genauths_defaults(
    auth_server: RunningAuthServer,
) -> None:
    token = auth_server.server.mint("dave")
    with (
        SyncIntrospector.from_env(environ=genauth_env(auth_server)) as from_env,
        SyncIntrospector.from_genauth("post-client", "post-secret", auth_server.url) as reference,
    ):
        assert from_env._describe() == reference._describe()
        assert from_env.revocation_endpoint == reference.revocation_endpoint
        assert from_env.introspect(token).sub == "dave"


def test_from_env_reads_os_environ_by_default(
    auth_server: RunningAuthServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in genauth_env(auth_server, GENAUTH_CACHE_TTL="7").items():
        monkeypatch.setenv(name, value)
    with SyncIntrospector.from_env() as introspector:
        assert introspector.cache.ttl == 7
        assert introspector.introspect(auth_server.server.mint("erin")).sub == "erin"


def test_a_missing_secret_names_the_variable(auth_server: RunningAuthServer) -> None:
    environ = genauth_env(auth_server)
    del environ["GENAUTH_APP_SECRET"]
    with pytest.raises(ConfigurationError) as caught:
        Introspector.from_env(environ=environ)
    assert str(caught.value) == (
        "GENAUTH_APP_SECRET is not set: GENAUTH_INTROSPECTION_AUTH_METHOD='client_secret_post' "
        "needs the application's App Secret. Set it, or use "
        "GENAUTH_INTROSPECTION_AUTH_METHOD='none' if the application is a public client."
    )


def test_a_public_client_needs_no_secret_in_the_environment(
    auth_server: RunningAuthServer,
) -> None:
    environ = {
        "GENAUTH_APP_ID": "public-client",
        "GENAUTH_APP_HOST": auth_server.url,
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "none",
        "GENAUTH_APP_SECRET": "   ",  # blank counts as unset
    }
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(auth_server.server.mint("frank")).active


def test_every_problem_in_the_environment_is_reported_at_once() -> None:
    environ = {
        "GENAUTH_CACHE_TTL": "5m",
        "GENAUTH_TIMEOUT": "0",
        "GENAUTH_CACHE_MAXSIZE": "10_000",
        "GENAUTH_ALLOW_INSECURE_HTTP": "maybe",
        "GENAUTH_PROTOCOL": "saml",
    }
    with pytest.raises(ConfigurationError) as caught:
        Introspector.from_env(environ=environ)
    lines = str(caught.value).splitlines()
    assert [line.split("=")[0].split(" ")[0] for line in lines] == [
        "GENAUTH_ALLOW_INSECURE_HTTP",
        "GENAUTH_CACHE_TTL",
        "GENAUTH_CACHE_MAXSIZE",
        "GENAUTH_TIMEOUT",
        "GENAUTH_APP_ID",
        "GENAUTH_APP_SECRET",
        "GENAUTH_PROTOCOL",
        "GENAUTH_APP_HOST",
    ]
    assert "GENAUTH_CACHE_TTL='5m' is not a number of seconds (0 or more)" in lines[1]
    assert "GENAUTH_TIMEOUT='0' is not a number of seconds (more than 0)" in lines[3]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("APP_HOST", "", "GENAUTH_APP_HOST is not set: set it to the GenAuth"),
        ("APP_HOST", "https://x.ai/oidc", "GENAUTH_APP_HOST='https://x.ai/oidc' must be the bare"),
        ("PROTOCOL", "OAuth2", "GENAUTH_PROTOCOL='OAuth2' is not a GenAuth protocol; use one of"),
        ("INTROSPECTION_AUTH_METHOD", "post", "_INTROSPECTION_AUTH_METHOD='post' is not supported"),
        ("REVOCATION_AUTH_METHOD", "jwt", "GENAUTH_REVOCATION_AUTH_METHOD='jwt' is not supported"),
        ("CACHE_TTL", "-1", "GENAUTH_CACHE_TTL='-1' is not a number of seconds"),
        ("NEGATIVE_CACHE_TTL", "nan", "GENAUTH_NEGATIVE_CACHE_TTL='nan' is not a number"),
        ("LEEWAY", "1e3", "GENAUTH_LEEWAY='1e3' is not a number of seconds"),
        ("TIMEOUT", "9" * 400, "GENAUTH_TIMEOUT='99999"),
        ("CACHE_MAXSIZE", "0", "GENAUTH_CACHE_MAXSIZE='0' is not a whole number (1 or more)"),
        ("INTROSPECTION_ENDPOINT", "http://as.example", "_ENDPOINT='http://as.example' uses plain"),
        ("APP_ID", " ", "GENAUTH_APP_ID is not set"),
    ],
)  # fmt: skip
def test_a_wrong_variable_is_named(
    auth_server: RunningAuthServer, name: str, value: str, message: str
) -> None:
    environ = genauth_env(auth_server, **{f"GENAUTH_{name}": value})
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        SyncIntrospector.from_env(environ=environ)


def test_an_invalid_method_is_reported_once_not_as_a_revocation_problem() -> None:
    environ = {
        "GENAUTH_APP_ID": "app",
        "GENAUTH_APP_HOST": "https://example.genauth.ai",
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "basic",
    }
    with pytest.raises(ConfigurationError) as caught:
        SyncIntrospector.from_env(environ=environ)
    assert str(caught.value) == (
        "GENAUTH_INTROSPECTION_AUTH_METHOD='basic' is not supported; use one of "
        "client_secret_post, client_secret_basic, none, client_secret_jwt, private_key_jwt."
    )


def test_an_explicit_endpoint_serves_other_servers_without_app_host(
    auth_server: RunningAuthServer,
) -> None:
    environ = {
        "AS_APP_ID": "public-client",
        "AS_INTROSPECTION_AUTH_METHOD": "none",
        "AS_INTROSPECTION_ENDPOINT": auth_server.endpoint("oauth"),
    }
    with SyncIntrospector.from_env("AS_", environ=environ) as introspector:
        assert introspector.revocation_endpoint is None
        assert introspector.introspect(auth_server.server.mint("gina")).sub == "gina"


def test_code_options_are_defaults_the_environment_overrides(
    auth_server: RunningAuthServer,
) -> None:
    environ = genauth_env(auth_server, GENAUTH_CACHE_TTL="60")
    with SyncIntrospector.from_env(environ=environ, cache_ttl=5, timeout=3) as introspector:
        assert introspector.cache.ttl == 60  # the environment won
        assert introspector.timeout == 3  # the environment said nothing


def test_allow_insecure_http_from_the_environment() -> None:
    environ = {
        "GENAUTH_APP_ID": "app",
        "GENAUTH_APP_SECRET": "secret",
        "GENAUTH_APP_HOST": "http://auth.internal",
        "GENAUTH_ALLOW_INSECURE_HTTP": "true",
    }
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspection_endpoint.startswith("http://auth.internal/oidc/")


def test_a_misspelled_variable_is_warned_about(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    environ = genauth_env(auth_server, GENAUTH_CACHE_TLL="5", GENAUTH_USER_POOL_ID="other-sdk")
    with caplog.at_level(logging.WARNING, logger="genauth_guard"):
        SyncIntrospector.from_env(environ=environ).close()
    assert "GENAUTH_CACHE_TLL is not a setting genauth-guard reads; GENAUTH_CACHE_TTL?" in (
        caplog.text
    )
    assert "GENAUTH_USER_POOL_ID" not in caplog.text  # not close to any of ours


def test_a_malformed_prefix_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="prefix='GEN AUTH' must be"):
        Introspector.from_env("GEN AUTH", environ={})


def test_the_readme_table_documents_every_variable() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Environment variables\n", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `GENAUTH_([A-Z_]+)` \|", section, flags=re.MULTILINE))
    assert documented == set(ENV_VARIABLES)
