"""Shared fixtures: a real dev authorization server on 127.0.0.1, per test module."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from genauth_guard.dev.server import DevAuthServer, DevClient
from genauth_guard.dev.testing import serve_in_thread

CLIENTS = (
    DevClient("post-client", "post-secret", "client_secret_post"),
    DevClient("basic-client", "basic:secret with spaces", "client_secret_basic"),
    DevClient("public-client", None, "none"),
)


@dataclass
class RunningAuthServer:
    server: DevAuthServer
    url: str

    def endpoint(self, protocol: str = "oidc") -> str:
        return f"{self.url}/{protocol}/token/introspection"

    @property
    def calls(self) -> int:
        return self.server.introspection_calls


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[RunningAuthServer]:
    server = DevAuthServer(CLIENTS)
    with serve_in_thread(server.app) as url:
        server.issuer = url
        yield RunningAuthServer(server, url)


@pytest.fixture(autouse=True)
def no_token_or_secret_in_any_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Every test doubles as a leak check: the library never logs a token or a secret.

    Records every token the dev server mints during the test (through the
    Python API or its token endpoint) and, after the test, searches every
    ``genauth_guard`` log record, tracebacks included, for them and for the
    test clients' secrets.
    """
    minted: list[str] = []
    mint = DevAuthServer.mint

    def recording_mint(self: DevAuthServer, *args: Any, **kwargs: Any) -> str:
        token = mint(self, *args, **kwargs)
        minted.append(token)
        return token

    monkeypatch.setattr(DevAuthServer, "mint", recording_mint)
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    yield
    secrets = [client.client_secret for client in CLIENTS if client.client_secret]
    formatter = logging.Formatter()
    # In teardown, caplog.records holds only teardown's records: ask for the others.
    for record in (*caplog.get_records("setup"), *caplog.get_records("call")):
        if not record.name.startswith("genauth_guard"):
            continue
        text = record.getMessage()
        if record.exc_info:
            text += formatter.formatException(record.exc_info)
        leaked = [s for s in (*minted, *secrets) if s in text]
        assert not leaked, f"a token or secret reached the log: {record.name} {record.levelname}"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A real Redis: the machine's on 127.0.0.1:6379, or one started for the session."""
    from .redis_support import any_redis

    with any_redis() as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own (tests never see each other's keys); emptied after."""
    import redis

    from .redis_support import drop_prefix, unique_prefix

    prefix = unique_prefix()
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        drop_prefix(client, prefix)
    finally:
        client.close()
