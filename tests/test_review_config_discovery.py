"""Discovery: exact issuer match, no http endpoints from an https issuer, one deadline."""

from __future__ import annotations

import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import trustme
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import (
    AuthorizationServerUnavailable,
    ConfigurationError,
    Introspector,
    SyncIntrospector,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.discovery import clear_metadata_cache

WELL_KNOWN = "/.well-known/openid-configuration"


@pytest.fixture(autouse=True)
def fresh_metadata_cache() -> Iterator[None]:
    clear_metadata_cache()
    yield
    clear_metadata_cache()


def documents_app(documents: dict[str, dict[str, Any]]) -> Starlette:
    """Serves each document at ``{issuer path}/.well-known/openid-configuration``.

    ``{base}`` in a value becomes the URL the request came to, ``{port}`` its port.
    """

    def route(path: str, document: dict[str, Any]) -> Route:
        async def endpoint(request: Request) -> JSONResponse:
            base = str(request.base_url).rstrip("/")
            port = str(request.url.port)
            return JSONResponse(
                {k: v.replace("{base}", base).replace("{port}", port) for k, v in document.items()}
            )

        return Route(path + WELL_KNOWN, endpoint)

    return Starlette(routes=[route(path, doc) for path, doc in documents.items()])


PLAIN_DOCUMENTS = {
    "/slashless": {
        "issuer": "{base}/slashless/",
        "introspection_endpoint": "{base}/slashless/introspect",
    },
    "/slashed": {"issuer": "{base}/slashed/", "introspection_endpoint": "{base}/i"},
    "/hostcase": {
        "issuer": "http://localhost:{port}/hostcase",
        "introspection_endpoint": "{base}/i",
    },
}


@pytest.fixture(scope="module")
def plain_url() -> Iterator[str]:
    with serve_in_thread(documents_app(PLAIN_DOCUMENTS)) as url:
        yield url


# ---------------------------------------------------------------- the issuer, exactly


def test_an_issuer_that_differs_by_a_trailing_slash_is_refused(plain_url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        SyncIntrospector.from_discovery(f"{plain_url}/slashless", "app", "secret")
    assert str(caught.value).startswith(
        f"The discovery document at {plain_url}/slashless{WELL_KNOWN} names the issuer "
        f"'{plain_url}/slashless/', not '{plain_url}/slashless' (RFC 8414 3.3)"
    )


def test_an_issuer_typed_with_its_trailing_slash_matches(plain_url: str) -> None:
    with SyncIntrospector.from_discovery(f"{plain_url}/slashed/", "app", "secret") as found:
        assert found.server_metadata is not None
        assert found.server_metadata.issuer == f"{plain_url}/slashed/"
        assert found.introspection_endpoint == f"{plain_url}/i"
    with pytest.raises(ConfigurationError, match=re.escape("(RFC 8414 3.3)")):
        SyncIntrospector.from_discovery(f"{plain_url}/slashed", "app", "secret")


def test_an_issuer_that_differs_in_host_case_is_refused(plain_url: str) -> None:
    port = httpx.URL(plain_url).port
    typed = f"http://LocalHost:{port}/hostcase"
    with pytest.raises(ConfigurationError) as caught:
        SyncIntrospector.from_discovery(typed, "app", "secret")
    assert f"names the issuer 'http://localhost:{port}/hostcase', not '{typed}'" in str(
        caught.value
    )


# ---------------------------------------------------------------- https issuer, http endpoints


@contextmanager
def serve_tls(app: Any, ca: trustme.CA) -> Iterator[str]:
    """``app`` over https on 127.0.0.1, with a certificate from ``ca``."""
    cert = ca.issue_cert("127.0.0.1")
    with cert.private_key_pem.tempfile() as key_file, cert.cert_chain_pems[0].tempfile() as crt:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", ssl_keyfile=key_file, ssl_certfile=crt, lifespan="off"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "https server did not start"
            time.sleep(0.01)
        try:
            yield f"https://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            sock.close()


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[str, httpx.Client]]:
    ca = trustme.CA()
    documents = {
        "/tls": {
            "issuer": "{base}/tls",
            "introspection_endpoint": "http://127.0.0.1:9/tls/introspect",
        },
        "/tls-revocation": {
            "issuer": "{base}/tls-revocation",
            "introspection_endpoint": "{base}/tls/introspect",
            "revocation_endpoint": "http://localhost:9/tls/revoke",
        },
    }
    context = ssl.create_default_context()
    ca.configure_trust(context)
    with serve_tls(documents_app(documents), ca) as url, httpx.Client(verify=context) as client:
        yield url, client


@pytest.mark.parametrize(
    ("path", "option"),
    [("/tls", "introspection_endpoint"), ("/tls-revocation", "revocation_endpoint")],
)
def test_an_https_issuer_naming_http_endpoints_on_loopback_is_refused(
    tls_server: tuple[str, httpx.Client], path: str, option: str
) -> None:
    url, client = tls_server
    with pytest.raises(ConfigurationError) as caught:
        SyncIntrospector.from_discovery(url + path, "app", "secret", metadata_client=client)
    message = str(caught.value)
    assert f"{option} (from {url}{path}{WELL_KNOWN})" in message
    assert "plain http" in message and "https issuer" in message
    assert "allow_insecure_http=True" in message


def test_allow_insecure_http_accepts_them(tls_server: tuple[str, httpx.Client]) -> None:
    url, client = tls_server
    found = SyncIntrospector.from_discovery(
        url + "/tls", "app", "secret", metadata_client=client, allow_insecure_http=True
    )
    assert found.introspection_endpoint == "http://127.0.0.1:9/tls/introspect"
    found.close()


# ---------------------------------------------------------------- one deadline for the fetch


@contextmanager
def trickling_server() -> Iterator[tuple[str, list[float]]]:
    """Raw TCP on 127.0.0.1: ``/warm`` is answered at once (keep-alive); anything else
    gets ``HTTP/1.1 200 OK`` and then one header byte every 0.2 s, for up to 8 s.

    Yields the base URL and, per trickled answer, the seconds it kept its socket open.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    stop = threading.Event()
    held: list[float] = []

    def serve(conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while not stop.is_set():
                while b"\r\n\r\n" not in buffered:
                    data = conn.recv(4096)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                if head.split(b" ")[1] == b"/warm":
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                started = time.monotonic()
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not stop.is_set() and time.monotonic() - started < 8:
                        conn.sendall(b"X")
                        time.sleep(0.2)
                except OSError:
                    pass
                held.append(time.monotonic() - started)
                return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    finally:
        stop.set()
        listener.close()


@pytest.mark.parametrize("driver", [Introspector, SyncIntrospector])
def test_trickled_headers_cannot_hold_discovery_past_its_timeout(
    driver: type[Introspector] | type[SyncIntrospector],
) -> None:
    with trickling_server() as (url, held):
        started = time.monotonic()
        with pytest.raises(AuthorizationServerUnavailable) as caught:
            driver.from_discovery(f"{url}/oidc", "app", "secret", timeout=1)
        elapsed = time.monotonic() - started
        assert str(caught.value) == (
            f"The discovery endpoint {url}/oidc{WELL_KNOWN} did not answer in time; check "
            "that the authorization server is up and reachable from here."
        )
        assert elapsed < 2.0
        deadline = time.monotonic() + 5  # the connection is dropped, not left trickling
        while not held and time.monotonic() < deadline:
            time.sleep(0.05)
        assert held and held[0] < 3


def test_the_deadline_holds_on_a_reused_connection_of_the_callers_client() -> None:
    with trickling_server() as (url, _), httpx.Client() as client:
        assert client.get(url + "/warm").status_code == 404  # a pooled keep-alive connection
        started = time.monotonic()
        with pytest.raises(AuthorizationServerUnavailable, match="did not answer in time"):
            SyncIntrospector.from_discovery(
                f"{url}/oidc", "app", "secret", timeout=1, metadata_client=client
            )
        assert time.monotonic() - started < 2.0
