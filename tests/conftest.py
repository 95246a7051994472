"""Shared fixtures: a real dev authorization server on 127.0.0.1, per test module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from genauth_guard.devserver import DevAuthServer, DevClient
from genauth_guard.testing import serve_in_thread

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
