"""The ``dpop`` modes, their challenges, their options, and the URL behind proxies and mounts.

Over real HTTP on both guards: ``allowed`` (the default), ``required`` and
``off``; ``dpop_algs``; a guard without PyJWT; ``public_url`` behind a real
reverse proxy that strips a prefix; mounts (``root_path``, ``SCRIPT_NAME``);
a WebSocket handshake; the dev server minting bound tokens.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from genauth_guard import ConfigurationError, GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .dpop_support import (
    DPOP_ALGS,
    DPoPClient,
    asgi_app,
    challenge,
    refused_proof,
    refused_token,
    serve_guard,
    wsgi_app,
)
from .wsgi_support import werkzeug_server

KINDS = ("asgi", "wsgi")
PUBLIC: dict[str, Any] = {
    "introspection_endpoint": "http://127.0.0.1:9/introspect",
    "client_id": "public",
    "auth_method": "none",
}
POST_CLIENT = {"client_id": "post-client", "client_secret": "post-secret"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---------------------------------------------------------------- modes


@pytest.mark.parametrize("kind", KINDS)
def test_required_takes_only_proven_bound_tokens(kind: str, auth_server: RunningAuthServer) -> None:
    client = DPoPClient("PS256")
    bound = auth_server.server.mint("alice", jkt=client.jkt)
    unbound = auth_server.server.mint("bob")
    with serve_guard(kind, auth_server, dpop="required") as guarded:
        assert guarded.dpop(client, bound).status_code == 200
        missing = guarded.get()
        assert (missing.status_code, challenge(missing)) == (401, DPOP_ALGS)
        as_bearer = guarded.get(headers=bearer(unbound))  # the Bearer scheme is not taken
        assert (as_bearer.status_code, challenge(as_bearer)) == (401, DPOP_ALGS)
        assert "DPoP-bound access token" in as_bearer.json()["error_description"]
        assert guarded.get(headers=bearer(bound)).status_code == 401
        refused = guarded.dpop(client, unbound)
        assert refused.json()["error"] == "invalid_token"
        assert "only DPoP-bound" in refused.json()["error_description"]
        assert challenge(refused).startswith(f'{DPOP_ALGS}, error="invalid_token"')
        bad_proof = guarded.dpop(client, bound, htu="http://elsewhere/orders")
        assert challenge(bad_proof).startswith(f'{DPOP_ALGS}, error="invalid_dpop_proof"')


@pytest.mark.parametrize("kind", KINDS)
def test_off_takes_bearer_tokens_only_and_never_a_bound_one(
    kind: str, auth_server: RunningAuthServer
) -> None:
    client = DPoPClient("EdDSA")
    bound = auth_server.server.mint("alice", jkt=client.jkt)
    unbound = auth_server.server.mint("bob")
    with serve_guard(kind, auth_server, dpop="off") as guarded:
        assert guarded.get(headers=bearer(unbound)).status_code == 200
        missing = guarded.get()
        assert (missing.status_code, challenge(missing)) == (401, 'Bearer realm="api"')
        as_dpop = guarded.dpop(client, bound)  # not a scheme this guard takes: no token
        assert (as_dpop.status_code, challenge(as_dpop)) == (401, 'Bearer realm="api"')
        stolen = guarded.get(headers=bearer(bound))  # RFC 9449 7.2, in every mode
        assert stolen.status_code == 401
        assert challenge(stolen).startswith('Bearer realm="api", error="invalid_token"')
        assert "DPoP" not in challenge(stolen).split(",")[-1]


@pytest.mark.parametrize("kind", KINDS)
def test_dpop_algs_limits_the_algorithms(kind: str, auth_server: RunningAuthServer) -> None:
    es, rs = DPoPClient("ES256"), DPoPClient("RS256")
    with serve_guard(kind, auth_server, dpop_algs=("ES256",)) as guarded:
        assert guarded.dpop(es, auth_server.server.mint("a", jkt=es.jkt)).status_code == 200
        refused = guarded.dpop(rs, auth_server.server.mint("b", jkt=rs.jkt))
        assert refused.json()["error"] == "invalid_dpop_proof"
        assert challenge(refused).startswith('Bearer realm="api", DPoP algs="ES256", error=')


@pytest.mark.parametrize("kind", KINDS)
def test_dpop_max_age_sets_the_window(kind: str, auth_server: RunningAuthServer) -> None:
    import time

    client = DPoPClient()
    token = auth_server.server.mint("a", jkt=client.jkt)
    with serve_guard(kind, auth_server, dpop_max_age=30) as guarded:
        assert guarded.dpop(client, token, iat=time.time() - 20).status_code == 200
        refused_proof(guarded.dpop(client, token, iat=time.time() - 40), "older than 30 seconds")


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"dpop": "maybe"}, "dpop='maybe'"),
        ({"dpop": True}, "dpop=True"),
        ({"dpop_algs": ("none",)}, "'none'"),
        ({"dpop_algs": ("ES256", "HS256")}, "symmetric"),
        ({"dpop_algs": ("ES257",)}, "'ES257'"),
        ({"dpop_algs": ()}, "at least one"),
        ({"dpop_max_age": 0}, "dpop_max_age"),
        ({"dpop_max_age": True}, "dpop_max_age"),
        ({"dpop_max_age": float("nan")}, "dpop_max_age"),
        ({"dpop_max_age": 86400}, "dpop_max_age"),
        ({"public_url": "api.example.com"}, "public_url"),
        ({"public_url": "ftp://api.example.com"}, "public_url"),
        ({"public_url": "https://api.example.com/?x=1"}, "public_url"),
        ({"public_url": "https://user@api.example.com"}, "public_url"),
        ({"public_url": 443}, "public_url"),
        ({"client_cert_header": "X Cert"}, "client_cert_header"),
        ({"client_cert_header": "Authorization"}, "client_cert_header"),
    ],
)
@pytest.mark.parametrize("kind", KINDS)
def test_bad_options_are_configuration_errors(
    kind: str, auth_server: RunningAuthServer, options: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        if kind == "asgi":
            GenAuthGuard(asgi_app(), introspector=Introspector(**PUBLIC, **{}), **options)
        else:
            GenAuthGuardWSGI(wsgi_app, introspector=SyncIntrospector(**PUBLIC), **options)
    assert says in str(raised.value)


# ---------------------------------------------------------------- without the JOSE library


@pytest.fixture
def no_jose(monkeypatch: pytest.MonkeyPatch) -> None:
    """PyJWT as if it were not installed: ``import jwt`` fails."""
    monkeypatch.setitem(sys.modules, "jwt", None)
    monkeypatch.setitem(sys.modules, "jwt.algorithms", None)


@pytest.mark.parametrize("kind", KINDS)
def test_without_pyjwt_bearer_works_and_dpop_fails_closed(
    kind: str, auth_server: RunningAuthServer, no_jose: None, caplog: pytest.LogCaptureFixture
) -> None:
    client = DPoPClient()
    proof_for = client.proof  # made before: the client has its own PyJWT
    bound = auth_server.server.mint("alice", jkt=client.jkt)
    unbound = auth_server.server.mint("bob")
    with serve_guard(kind, auth_server) as guarded:
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "genauth-guard[jose]" in warnings[0].getMessage()
        assert guarded.get(headers=bearer(unbound)).status_code == 200
        missing = guarded.get()
        assert challenge(missing) == 'Bearer realm="api"'  # DPoP is not offered
        headers = {
            "Authorization": f"DPoP {bound}",
            "DPoP": proof_for("GET", guarded.url + "/orders", bound),
        }
        refused = guarded.get(headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"] == "invalid_dpop_proof"
        assert "cannot check DPoP proofs" in refused.json()["error_description"]
        assert f'{DPOP_ALGS}, error="invalid_dpop_proof"' in challenge(refused)
        refused_token(guarded.get(headers=bearer(bound)), "bound to a DPoP key", scheme="Bearer")
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_without_pyjwt_required_is_a_configuration_error(
    kind: str, auth_server: RunningAuthServer, no_jose: None
) -> None:
    extra = r"pip install 'genauth-guard\[jose\]'"
    with (
        pytest.raises(ConfigurationError, match=extra),
        serve_guard(kind, auth_server, dpop="required"),
    ):
        pass
    with serve_guard(kind, auth_server, dpop="off") as guarded:  # needs nothing
        assert guarded.get().status_code == 401


# ---------------------------------------------------------------- the URL behind a proxy


class StrippingProxy:
    """A reverse proxy: ``/api/x`` goes to ``{backend}/x``, with the backend's own Host.

    It adds ``X-Forwarded-Host`` and ``-Prefix`` as proxies do; the guard
    must not believe them. (No ``X-Forwarded-Proto``: uvicorn itself applies
    it for proxies it trusts, 127.0.0.1 by default, before the guard runs.)
    ``backend`` is set once the backend runs.
    """

    prefix = "/api"

    def __init__(self) -> None:
        self.backend = ""
        self.app = Starlette(routes=[Mount(self.prefix, app=self.forward)])

    async def forward(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        headers = [(k, v) for k, v in request.headers.raw if k != b"host"]
        headers += [
            (b"x-forwarded-host", request.headers["host"].encode()),
            (b"x-forwarded-prefix", self.prefix.encode()),
        ]
        path = scope["path"].removeprefix(self.prefix) or "/"
        async with httpx.AsyncClient(base_url=self.backend) as http:
            answer = await http.request(
                request.method, path, params=request.url.query, headers=headers
            )
        response = Response(answer.content, answer.status_code)
        for name in ("content-type", "www-authenticate"):
            if name in answer.headers:
                response.headers[name] = answer.headers[name]
        await response(scope, receive, send)


@pytest.mark.parametrize("kind", KINDS)
def test_public_url_behind_a_proxy_that_strips_a_prefix(
    kind: str, auth_server: RunningAuthServer
) -> None:
    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    proxy = StrippingProxy()
    with serve_in_thread(proxy.app) as front:
        public = front + "/api"
        with serve_guard(kind, auth_server, public_url=public + "/") as backend:
            proxy.backend = backend.url
            through = httpx.Client(base_url=public)

            def via_proxy(htu: str) -> httpx.Response:
                return through.get("/orders?page=1", headers=client.headers("GET", htu, token))

            assert via_proxy(public + "/orders").status_code == 200  # what the client sees
            refused_proof(via_proxy(backend.url + "/orders"), "htu")  # what the app server got
            refused_proof(via_proxy(front + "/orders"), "htu")  # the prefix matters
        with serve_guard(kind, auth_server) as backend:  # no public_url: the URL received
            proxy.backend = backend.url
            refused_proof(via_proxy(public + "/orders"), "htu")  # X-Forwarded-* ignored
            assert via_proxy(backend.url + "/orders").status_code == 200


@pytest.mark.parametrize("kind", KINDS)
def test_public_url_normalises_the_default_port(kind: str, auth_server: RunningAuthServer) -> None:
    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    with serve_guard(kind, auth_server, public_url="HTTPS://API.example.com:443") as guarded:
        for htu in ("https://api.example.com/orders", "https://api.example.com:443/orders"):
            assert guarded.dpop(client, token, htu=htu).status_code == 200, htu
        for htu in ("http://api.example.com/orders", "https://api.example.com:8443/orders"):
            refused_proof(guarded.dpop(client, token, htu=htu), "htu")


def test_asgi_under_a_mount_signs_the_full_path(auth_server: RunningAuthServer) -> None:
    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    introspector = Introspector(auth_server.endpoint(), **POST_CLIENT)
    guarded = GenAuthGuard(asgi_app(), introspector=introspector)
    mounted = Starlette(routes=[Mount("/v1", app=guarded)])
    with serve_in_thread(mounted) as url, httpx.Client(base_url=url) as http:
        ok = http.get("/v1/orders", headers=client.headers("GET", url + "/v1/orders", token))
        assert ok.status_code == 200, ok.text
        wrong = http.get("/v1/orders", headers=client.headers("GET", url + "/orders", token))
        refused_proof(wrong, "htu")


def test_wsgi_under_script_name_signs_the_full_path(auth_server: RunningAuthServer) -> None:
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    with SyncIntrospector(auth_server.endpoint(), **POST_CLIENT) as verifier:
        guarded = GenAuthGuardWSGI(wsgi_app, introspector=verifier)
        mounted = DispatcherMiddleware(wsgi_app, {"/v1": guarded})
        with werkzeug_server(mounted) as url, httpx.Client(base_url=url) as http:
            path = "/v1/caf%C3%A9/../orders"  # the client normalises dot segments itself
            ok = http.get("/v1/orders", headers=client.headers("GET", url + path, token))
            assert ok.status_code == 200, ok.text
            wrong = http.get("/v1/orders", headers=client.headers("GET", url + "/orders", token))
            refused_proof(wrong, "htu")


# ---------------------------------------------------------------- WebSocket, dev server


def test_a_websocket_handshake_with_a_proof(auth_server: RunningAuthServer) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    client = DPoPClient("EdDSA")
    token = auth_server.server.mint("carol", jkt=client.jkt)
    with serve_guard("asgi", auth_server) as guarded:
        ws_url = guarded.url.replace("http://", "ws://") + "/ws"
        for htu in (guarded.url + "/ws", ws_url):  # ws is http, wss is https
            headers = client.headers("GET", htu, token)
            with connect(ws_url, additional_headers=headers) as websocket:
                assert websocket.recv() == "carol"
        replayed = client.headers("GET", ws_url, token)
        with connect(ws_url, additional_headers=replayed):
            pass
        with pytest.raises(InvalidStatus) as refused:
            connect(ws_url, additional_headers=replayed)
        assert refused.value.response.status_code == 403  # closed before accept


def test_the_dev_server_mints_bound_tokens(auth_server: RunningAuthServer) -> None:
    client = DPoPClient()
    x5t = "x" * 43
    minted = httpx.post(
        auth_server.url + "/dev/tokens",
        data={
            "client_id": "post-client",
            "client_secret": "post-secret",
            "sub": "dave",
            "jkt": client.jkt,
            "x5t#S256": x5t,
        },
    )
    assert minted.status_code == 200, minted.text
    assert minted.json()["token_type"] == "DPoP"
    answer = auth_server.server.answer(minted.json()["access_token"])
    assert answer["cnf"] == {"jkt": client.jkt, "x5t#S256": x5t}
    assert answer["token_type"] == "DPoP"
    for bad in ({"jkt": "short"}, {"x5t#S256": "not a thumbprint, this one: " + "y" * 20}):
        refused = httpx.post(
            auth_server.url + "/dev/tokens",
            data={"client_id": "post-client", "client_secret": "post-secret", **bad},
        )
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request")
    with pytest.raises(ValueError, match="thumbprint"):
        auth_server.server.mint("dave", jkt="not-a-thumbprint")
