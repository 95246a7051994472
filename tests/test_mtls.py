"""Certificate-bound access tokens (RFC 8705 3) on both guards.

Through a real TLS-terminating proxy that verifies client certificates and
passes the leaf in a header (URL-encoded PEM, or RFC 9440 ``Client-Cert``);
through the ASGI TLS extension (no server fills it yet: the ASGI app is
called with the scope a server would build); through WSGI's
``SSL_CLIENT_CERT`` (Apache mod_ssl; the WSGI app is called with its
environ). Only the configured source counts, only the leaf counts, and a
malformed certificate is a refusal, never a pass.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
import pytest
import trustme

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .dpop_support import DPoPClient, asgi_app, challenge, refused_token, serve_guard, wsgi_app
from .mtls_support import PROXY_HEADERS, header_value, leaf_der, leaf_pem, mtls_proxy, x5t_s256

KINDS = ("asgi", "wsgi")
POST_CLIENT = {"client_id": "post-client", "client_secret": "post-secret"}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def alice_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("alice@clients.example")


@pytest.fixture(scope="module")
def mallory_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("mallory@clients.example")


def bound_to(auth: RunningAuthServer, cert: trustme.LeafCert, **kwargs: Any) -> str:
    return auth.server.mint("alice", x5t_s256=x5t_s256(leaf_der(cert)), **kwargs)


# ---------------------------------------------------------------- through a real mTLS proxy


@pytest.mark.parametrize("encoding", ["pem", "rfc9440"])
@pytest.mark.parametrize("kind", KINDS)
def test_through_a_proxy_only_the_bound_certificate_passes(
    kind: str,
    encoding: str,
    ca: trustme.CA,
    alice_cert: trustme.LeafCert,
    mallory_cert: trustme.LeafCert,
    auth_server: RunningAuthServer,
) -> None:
    token = bound_to(auth_server, alice_cert)
    bearer = {"Authorization": f"Bearer {token}"}
    header = PROXY_HEADERS[encoding]
    with (
        serve_guard(kind, auth_server, client_cert_header=header) as backend,
        mtls_proxy(ca, backend.url, encoding) as proxy,
    ):

        def get(cert: trustme.LeafCert | None, **headers: str) -> httpx.Response:
            context = proxy.client_context(cert)
            with httpx.Client(verify=context) as client:
                return client.get(proxy.url + "/orders", headers={**bearer, **headers})

        ok = get(alice_cert)
        assert ok.status_code == 200, ok.text
        assert ok.json()["cnf"] == {"x5t#S256": x5t_s256(leaf_der(alice_cert))}
        refused_token(get(mallory_cert), "not the one", scheme="Bearer")
        refused_token(get(None), "mutual TLS", scheme="Bearer")
        # A client cannot bring its own header: the proxy replaces it.
        forged = {header: header_value(leaf_der(alice_cert), encoding)}
        refused_token(get(mallory_cert, **forged), "not the one", scheme="Bearer")
        refused_token(get(None, **forged), "mutual TLS", scheme="Bearer")
        unbound = auth_server.server.mint("bob")
        with httpx.Client(verify=proxy.client_context(None)) as client:
            plain = client.get(
                proxy.url + "/orders", headers={"Authorization": f"Bearer {unbound}"}
            )
        assert plain.status_code == 200  # certificates matter only to bound tokens


def pem_of(cert: trustme.LeafCert) -> str:
    return header_value(leaf_der(cert), "pem")


@pytest.mark.parametrize(
    "value",
    [
        "garbage",
        ":garbage!:",
        "::",
        ":" + base64.b64encode(b"\x30\x03\x01\x01\xff\x00").decode() + ":",  # trailing byte
        "-----BEGIN CERTIFICATE-----%0AAAAA%0A-----END CERTIFICATE-----",
        "{alice_pem}{alice_pem}",  # two certificates in one header
        "{alice_pem_truncated}",
        "%FF%FE",
        "{alice_pem}, {alice_pem}",  # two headers folded into one
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_a_malformed_certificate_header_is_a_refusal(
    kind: str, value: str, alice_cert: trustme.LeafCert, auth_server: RunningAuthServer
) -> None:
    token = bound_to(auth_server, alice_cert)
    alice = pem_of(alice_cert)
    value = value.format(alice_pem=alice, alice_pem_truncated=alice[:-60] + alice[-29:])
    with serve_guard(kind, auth_server, client_cert_header="X-SSL-Client-Cert") as guarded:
        headers = {"Authorization": f"Bearer {token}", "X-SSL-Client-Cert": value}
        refused_token(guarded.get(headers=headers), "could not be read", scheme="Bearer")
        two = [("Authorization", f"Bearer {token}")] + [("X-SSL-Client-Cert", alice)] * 2
        refused_token(guarded.get(headers=two), "more than one", scheme="Bearer")
        good = {"Authorization": f"Bearer {token}", "X-SSL-Client-Cert": alice}
        assert guarded.get(headers=good).status_code == 200


@pytest.mark.parametrize("mode", ["off", "allowed", "required"])
@pytest.mark.parametrize("kind", KINDS)
def test_the_certificate_binding_holds_in_every_dpop_mode(
    kind: str,
    mode: str,
    alice_cert: trustme.LeafCert,
    mallory_cert: trustme.LeafCert,
    auth_server: RunningAuthServer,
) -> None:
    client = DPoPClient()
    both = bound_to(auth_server, alice_cert, jkt=client.jkt)  # DPoP and certificate
    only_cert = bound_to(auth_server, alice_cert)
    options = {"dpop": mode, "client_cert_header": "X-SSL-Client-Cert"}
    with serve_guard(kind, auth_server, **options) as guarded:
        alice, mallory = pem_of(alice_cert), pem_of(mallory_cert)
        if mode != "off":
            url = guarded.url + "/orders"
            for cert, status in ((alice, 200), (mallory, 401)):
                headers = {**client.headers("GET", url, both), "X-SSL-Client-Cert": cert}
                assert guarded.get(headers=headers).status_code == status
        if mode != "required":
            for cert, status in ((alice, 200), (mallory, 401)):
                headers = {"Authorization": f"Bearer {only_cert}", "X-SSL-Client-Cert": cert}
                assert guarded.get(headers=headers).status_code == status


# ---------------------------------------------------------------- the server's own TLS layer


def call_asgi(app: Any, headers: list[tuple[bytes, bytes]], tls: Any = None) -> httpx.Response:
    """One request to ``app`` with the scope an ASGI server with TLS would build."""
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": "/orders",
        "raw_path": b"/orders",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"api.example.com"), *headers],
        "server": ("api.example.com", 443),
        "client": ("192.0.2.7", 50000),
        "extensions": {} if tls is None else {"tls": tls},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    response_headers = [(k.decode(), v.decode()) for k, v in start["headers"]]
    return httpx.Response(start["status"], headers=response_headers, content=body)


def tls_extension(*chain: str) -> dict[str, Any]:
    """ASGI TLS extension 0.2: the client's chain as PEM strings, leaf first."""
    return {
        "server_cert": None,
        "client_cert_chain": list(chain),
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": 0x0304,
        "cipher_suite": 0x1301,
    }


def test_the_asgi_tls_extension_leaf(
    ca: trustme.CA,
    alice_cert: trustme.LeafCert,
    mallory_cert: trustme.LeafCert,
    auth_server: RunningAuthServer,
) -> None:
    token = bound_to(auth_server, alice_cert)
    auth = [(b"authorization", f"Bearer {token}".encode())]
    introspector = Introspector(auth_server.endpoint(), **POST_CLIENT)
    app = GenAuthGuard(asgi_app(), introspector=introspector)
    ca_pem = ca.cert_pem.bytes().decode()
    alice, mallory = leaf_pem(alice_cert), leaf_pem(mallory_cert)
    assert call_asgi(app, auth, tls_extension(alice, ca_pem)).status_code == 200
    refused_token(call_asgi(app, auth, tls_extension(mallory, alice)), "not the one", "Bearer")
    refused_token(call_asgi(app, auth, tls_extension()), "mutual TLS", "Bearer")
    refused_token(call_asgi(app, auth), "mutual TLS", "Bearer")  # plain HTTP: no extension
    refused_token(call_asgi(app, auth, tls_extension("junk")), "could not be read", "Bearer")
    # Without client_cert_header no header counts: a client cannot claim a certificate.
    forged = [*auth, (b"x-ssl-client-cert", pem_of(alice_cert).encode())]
    refused_token(call_asgi(app, forged), "mutual TLS", "Bearer")
    # With it, only the header counts: no fallback to the TLS layer.
    behind_proxy = GenAuthGuard(
        asgi_app(), introspector=introspector, client_cert_header="X-SSL-Client-Cert"
    )
    refused_token(call_asgi(behind_proxy, auth, tls_extension(alice)), "mutual TLS", "Bearer")
    assert call_asgi(behind_proxy, forged, tls_extension(mallory)).status_code == 200


def call_wsgi(app: Any, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    base = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/orders",
        "QUERY_STRING": "",
        "SERVER_NAME": "api.example.com",
        "SERVER_PORT": "443",
        "HTTP_HOST": "api.example.com",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(),
        "wsgi.version": (1, 0),
    }
    status: list[str] = []
    body = b"".join(app({**base, **environ}, lambda s, h, e=None: status.append(s)))
    return int(status[0].split()[0]), json.loads(body)


def test_the_wsgi_ssl_client_cert(
    alice_cert: trustme.LeafCert, mallory_cert: trustme.LeafCert, auth_server: RunningAuthServer
) -> None:
    token = bound_to(auth_server, alice_cert)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    with SyncIntrospector(auth_server.endpoint(), **POST_CLIENT) as introspector:
        app = GenAuthGuardWSGI(wsgi_app, introspector=introspector)
        alice, mallory = leaf_pem(alice_cert), leaf_pem(mallory_cert)
        assert call_wsgi(app, {**auth, "SSL_CLIENT_CERT": alice})[0] == 200
        status, body = call_wsgi(app, {**auth, "SSL_CLIENT_CERT": mallory})
        assert (status, body["error"]) == (401, "invalid_token")
        assert call_wsgi(app, auth)[0] == 401
        assert call_wsgi(app, {**auth, "SSL_CLIENT_CERT": "-----BEGIN nonsense"})[0] == 401
        forged = {**auth, "HTTP_X_SSL_CLIENT_CERT": pem_of(alice_cert)}
        assert call_wsgi(app, forged)[0] == 401  # no header counts without client_cert_header


def test_an_unbound_token_needs_no_certificate(auth_server: RunningAuthServer) -> None:
    token = auth_server.server.mint("bob")
    with serve_guard("asgi", auth_server, client_cert_header="Client-Cert") as guarded:
        response = guarded.get(headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
        assert "www-authenticate" not in response.headers
        junk = {"Authorization": f"Bearer {token}", "Client-Cert": ":junk:"}
        assert guarded.get(headers=junk).status_code == 200  # not read for an unbound token
        assert challenge(guarded.get()).startswith('Bearer realm="api"')
