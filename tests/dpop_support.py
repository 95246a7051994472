"""DPoP clients for the tests: a key per algorithm, proofs made as RFC 9449 4.2 says.

Proofs are signed with PyJWT (the ``jose`` extra), the way a Python client
would make them; the broken ones (``alg: none``, HS256, a private ``jwk``)
are made by hand, the way an attacker would.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector, require_scopes
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

ALGS = ("ES256", "RS256", "PS256", "EdDSA")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def ath(token: str) -> str:
    return b64url(hashlib.sha256(token.encode("ascii")).digest())


@functools.cache
def private_key(alg: str, which: int = 0) -> Any:
    """One key per algorithm (and ``which``), made once per test session."""
    if alg.startswith("ES"):
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key: Any, *, private: bool = False) -> dict[str, Any]:
    algorithm: Any = RSAAlgorithm
    if isinstance(key, ec.EllipticCurvePrivateKey):
        algorithm = ECAlgorithm
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm = OKPAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key if private else key.public_key(), as_dict=True)
    return jwk


def thumbprint(jwk: dict[str, Any]) -> str:
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    required = {name: jwk[name] for name in members[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode()).digest())


@dataclass
class DPoPClient:
    """A client holding one key: it makes proofs, and knows its ``jkt``."""

    alg: str = "ES256"
    which: int = 0

    @property
    def key(self) -> Any:
        return private_key(self.alg, self.which)

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk(self.key)

    @property
    def jkt(self) -> str:
        return thumbprint(self.jwk)

    def proof(
        self,
        method: str,
        url: str,
        token: str | None,
        *,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        """A proof for ``method url`` with ``token``'s ``ath``; overrides for broken ones."""
        payload: dict[str, Any] = {
            "jti": jti or secrets.token_urlsafe(16),
            "htm": method,
            "htu": url,
            "iat": int(time.time()) if iat is None else iat,
        }
        if token is not None:
            payload["ath"] = ath(token)
        payload.update(claims or {})
        for name in drop:
            payload.pop(name, None)
        headers = {"typ": "dpop+jwt", "jwk": self.jwk, **(header or {})}
        return jwt.encode(payload, self.key, algorithm=self.alg, headers=headers)

    def headers(self, method: str, url: str, token: str, **kwargs: Any) -> dict[str, str]:
        """``Authorization: DPoP`` and a fresh ``DPoP`` proof for one request."""
        return {"Authorization": f"DPoP {token}", "DPoP": self.proof(method, url, token, **kwargs)}


def unsigned(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A JWS made by hand: ``alg: none`` and other forgeries."""
    return ".".join(
        (
            b64url(json.dumps(header).encode()),
            b64url(json.dumps(payload).encode()),
            b64url(signature),
        )
    )


# ---------------------------------------------------------------- guarded apps, ASGI and WSGI

DPOP_ALGS = 'DPoP algs="ES256 RS256 PS256 EdDSA"'


async def _asgi_whoami(request: Request) -> JSONResponse:
    info = request.scope["token_info"]
    return JSONResponse({"identity": request.user.identity, "cnf": dict(info.cnf or {})})


@require_scopes("orders:write")
async def _asgi_write(request: Request) -> JSONResponse:
    return JSONResponse({"written": True})


async def _asgi_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.identity)
    await websocket.close()


def asgi_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/orders", _asgi_whoami, methods=["GET", "POST"]),
            Route("/orders/write", _asgi_write, methods=["GET", "POST"]),
            WebSocketRoute("/ws", _asgi_ws),
        ]
    )


@require_scopes("orders:write")
def _wsgi_write(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    return [b'{"written": true}']


def wsgi_app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO") == "/orders/write":
        return _wsgi_write(environ, start_response)
    info = environ["genauth_guard.token_info"]
    body = {
        "identity": environ.get("REMOTE_USER", ""),
        "cnf": dict(info.cnf or {}),
        "auth_type": environ["AUTH_TYPE"],
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]


@dataclass
class Guarded:
    """One guarded app served on 127.0.0.1: ``kind`` is ``asgi`` or ``wsgi``."""

    kind: str
    url: str
    client: httpx.Client

    def get(self, path: str = "/orders", **kwargs: Any) -> httpx.Response:
        return self.client.get(self.url + path, **kwargs)

    def dpop(
        self,
        client: DPoPClient,
        token: str,
        path: str = "/orders",
        *,
        method: str = "GET",
        htu: str | None = None,
        **proof: Any,
    ) -> httpx.Response:
        """``token`` sent as DPoP with a fresh proof by ``client`` (overrides in ``proof``)."""
        url = self.url + path
        headers = client.headers(method, htu or url.split("?")[0], token, **proof)
        return self.client.request(method, url, headers=headers)


@contextmanager
def serve_guard(
    kind: str,
    auth: RunningAuthServer,
    *,
    introspector: dict[str, Any] | None = None,
    **options: Any,
) -> Iterator[Guarded]:
    """Serve the test app behind ``kind``'s guard with ``options``: uvicorn or werkzeug."""
    settings = {
        "client_id": "post-client",
        "client_secret": "post-secret",
        **(introspector or {}),
    }
    with httpx.Client(timeout=10) as client:
        if kind == "asgi":
            verifier = Introspector(auth.endpoint(), **settings)
            app = GenAuthGuard(asgi_app(), introspector=verifier, **options)
            with serve_in_thread(app) as url:
                yield Guarded(kind, url, client)
        else:
            with SyncIntrospector(auth.endpoint(), **settings) as sync_verifier:
                wsgi = GenAuthGuardWSGI(wsgi_app, introspector=sync_verifier, **options)
                with werkzeug_server(wsgi) as url:
                    yield Guarded(kind, url, client)


def challenge(response: httpx.Response) -> str:
    return response.headers.get("www-authenticate", "")


def refused_proof(response: httpx.Response, says: str = "") -> None:
    """401 ``invalid_dpop_proof`` in the DPoP challenge, saying ``says``."""
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_dpop_proof"
    assert says in response.json()["error_description"]
    assert f'{DPOP_ALGS}, error="invalid_dpop_proof", error_description="' in challenge(response)
    assert 'Bearer realm="api", DPoP' in challenge(response)  # the Bearer one carries no error


def refused_token(response: httpx.Response, says: str = "", scheme: str = "DPoP") -> None:
    """401 ``invalid_token`` in the challenge of ``scheme``, saying ``says``."""
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    assert says in response.json()["error_description"]
    carrier = DPOP_ALGS if scheme == "DPoP" else 'Bearer realm="api"'
    assert f'{carrier}, error="invalid_token"' in challenge(response)
