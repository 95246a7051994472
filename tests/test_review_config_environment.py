"""from_env: a secret is used exactly as set, and numbers of any length are read safely."""

from __future__ import annotations

import pytest

from genauth_guard import ConfigurationError, Introspector, SyncIntrospector

from .conftest import RunningAuthServer


def environment(server: RunningAuthServer, **variables: str) -> dict[str, str]:
    return {
        "GENAUTH_APP_ID": "post-client",
        "GENAUTH_APP_SECRET": "post-secret",
        "GENAUTH_APP_HOST": server.url,
        **variables,
    }


@pytest.mark.parametrize(
    "secret", ["post-secret\n", " post-secret", "post-secret ", "\tpost-secret\r\n"]
)
def test_a_secret_with_surrounding_whitespace_is_refused(
    auth_server: RunningAuthServer, secret: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SyncIntrospector.from_env(environ=environment(auth_server, GENAUTH_APP_SECRET=secret))
    message = str(caught.value)
    assert "GENAUTH_APP_SECRET" in message
    assert "whitespace" in message and "remove" in message
    assert "post-secret" not in message
    assert message.count("GENAUTH_APP_SECRET") == 1  # one complaint, not also "not set"


def test_a_secret_with_inner_spaces_is_kept_as_it_is(auth_server: RunningAuthServer) -> None:
    environ = {
        "GENAUTH_APP_ID": "basic-client",
        "GENAUTH_APP_SECRET": "basic:secret with spaces",
        "GENAUTH_APP_HOST": auth_server.url,
        "GENAUTH_INTROSPECTION_AUTH_METHOD": "client_secret_basic",
    }
    token = auth_server.server.mint("gina", client_id="basic-client")
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(token).sub == "gina"


def test_ids_and_urls_are_still_forgiven_their_whitespace(auth_server: RunningAuthServer) -> None:
    environ = environment(
        auth_server, GENAUTH_APP_ID=" post-client\n", GENAUTH_APP_HOST=f" {auth_server.url}\n"
    )
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(auth_server.server.mint("hal")).sub == "hal"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CACHE_MAXSIZE", "9" * 5000),
        ("CACHE_MAXSIZE", "1" + "0" * 30),
        ("CACHE_TTL", "9" * 5000),
        ("NEGATIVE_CACHE_TTL", "1" * 5000 + ".5"),
        ("TIMEOUT", "0." + "0" * 5000 + "1"),
        ("LEEWAY", "7" * 5000),
    ],
)
def test_a_number_with_thousands_of_digits_names_the_variable(
    auth_server: RunningAuthServer, name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Introspector.from_env(environ=environment(auth_server, **{f"GENAUTH_{name}": value}))
    message = str(caught.value)
    assert message.startswith(f"GENAUTH_{name}=")
    assert "write it like" in message
    assert len(message) < 400  # the value is not echoed whole


def test_a_long_but_sensible_cache_size_is_read(auth_server: RunningAuthServer) -> None:
    environ = environment(auth_server, GENAUTH_CACHE_MAXSIZE="000000000000000000000010000")
    with SyncIntrospector.from_env(environ=environ) as introspector:
        assert introspector.introspect(auth_server.server.mint("ivy")).sub == "ivy"
