"""Which HTTP transport ``Introspector`` uses, and the promises both keep.

aiohttp when the extra is installed, httpx otherwise, the user's
``http_client`` over both; the choice is logged at DEBUG at start-up. Both
ignore the environment's proxy and ``.netrc``, and both survive being used
from one event loop after another. Against the real dev server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import types
from pathlib import Path

import httpx
import pytest
import trustme

from genauth_guard import Introspector
from genauth_guard._aiohttp_transport import AiohttpTransport
from genauth_guard._client_auth import ClientSecretPost
from genauth_guard._protocol import token_request
from genauth_guard._transport import verified_tls

from .conftest import RunningAuthServer
from .test_hardening import tls_server
from .transports import TRANSPORTS, build_introspector

CLIENT = {"client_id": "post-client", "client_secret": "post-secret"}


def transport_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "genauth_guard" and "HTTP transport" in record.getMessage()
    ]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.anyio
async def test_the_transport_in_use_is_logged_at_start_up_and_works(
    auth_server: RunningAuthServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    introspector = build_introspector(transport, auth_server.endpoint(), **CLIENT)
    [line] = transport_lines(caplog)
    assert f"HTTP transport {transport}" in line and auth_server.endpoint() in line
    if transport == "httpx":
        assert "install genauth-guard[aiohttp]" in line  # the way to the faster one
    async with introspector:
        token = auth_server.server.mint("alice")
        assert (await introspector.introspect(token)).sub == "alice"


@pytest.mark.anyio
async def test_http_client_overrides_the_installed_extra(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="genauth_guard")
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        introspector = Introspector(auth_server.endpoint(), http_client=client, **CLIENT)
        assert introspector.transport.startswith("httpx (the http_client you passed)")
        assert "the http_client you passed" in transport_lines(caplog)[0]
        token = auth_server.server.mint("alice")
        assert (await introspector.introspect(token)).sub == "alice"
        await introspector.aclose()
        assert not client.is_closed  # the user's client stays the user's
    assert len(sent) == 1


@pytest.mark.anyio
async def test_a_broken_aiohttp_install_falls_back_to_httpx_with_a_warning(
    auth_server: RunningAuthServer,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An optional part that fails to import never takes the API down."""

    class Broken(types.ModuleType):
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("compiled for another Python")

    monkeypatch.setitem(
        sys.modules, "genauth_guard._aiohttp_transport", Broken("_aiohttp_transport")
    )
    introspector = Introspector(auth_server.endpoint(), **CLIENT)
    assert introspector.transport.startswith("httpx")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("aiohttp is installed but failed to import" in r.getMessage() for r in warnings)
    async with introspector:
        token = auth_server.server.mint("alice")
        assert (await introspector.introspect(token)).sub == "alice"


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.anyio
async def test_the_environments_proxy_and_netrc_are_ignored(
    auth_server: RunningAuthServer,
    transport: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A proxy that does not exist and .netrc credentials for the server: neither is used.

    Through the proxy the call would fail; with the .netrc's Basic credentials
    added to our client_secret_post form, the dev server would refuse two
    client authentications at once (401). The answer proves neither happened.
    """
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password stolen\n")
    netrc.chmod(0o600)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("NETRC", str(netrc))
    async with build_introspector(transport, auth_server.endpoint(), **CLIENT) as introspector:
        token = auth_server.server.mint("alice")
        assert (await introspector.introspect(token)).sub == "alice"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_one_introspector_serves_one_event_loop_after_another_without_noise(
    auth_server: RunningAuthServer, transport: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Test runners and reloaders run loops in turn; pooled connections stay with their loop.

    Nothing is logged as an error (aiohttp would say "Unclosed client
    session" for a session left behind), with or without ``aclose()``.
    """
    introspector = build_introspector(transport, auth_server.endpoint(), **CLIENT)
    for name in ("alice", "bob", "carol"):
        token = auth_server.server.mint(name)
        assert asyncio.run(introspector.introspect(token)).sub == name
    asyncio.run(introspector.aclose())
    del introspector
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


@pytest.mark.anyio
async def test_the_aiohttp_side_verifies_tls_with_the_same_bundle_as_httpx() -> None:
    """Refused for a certificate the bundle does not trust, and for that reason only.

    The same server, trusted through a context that knows its CA, answers:
    the refusal above is certificate verification, not a broken connection.
    """
    ca = trustme.CA()
    with tls_server(ca) as (url, seen):
        request = token_request(url, ClientSecretPost("rs", "s"), "tok")
        untrusting = AiohttpTransport(4, verified_tls())
        try:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.exchange(request, 65536)
        finally:
            await untrusting.aclose()
        assert seen == []
        trusting_context = ssl.create_default_context()
        ca.configure_trust(trusting_context)
        trusting = AiohttpTransport(4, trusting_context)
        try:
            answer = await trusting.exchange(request, 65536)
        finally:
            await trusting.aclose()
        assert answer.status == 200 and b'"sub": "alice"' in answer.body
        assert len(seen) == 1
    # The bundle httpx verifies with is the one the aiohttp side was given.
    assert verified_tls().cert_store_stats() == (
        httpx.create_ssl_context(trust_env=False).cert_store_stats()
    )
