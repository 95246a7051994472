"""A strict authorization server for signed messages, written with ``cryptography`` alone.

Independent of the library under test (no PyJWT here): it checks client
assertions by RFC 7523 section 3 to the letter — the assertion type, a
verifying signature in the algorithm the client is registered with,
``iss`` = ``sub`` = ``client_id``, an ``aud`` naming this server (its issuer
or the URL called), a ``jti`` never seen before, ``iat`` now, ``exp`` at
most 60 s ahead, no secret and no Basic header — and answers RFC 7662
questions in JSON, or as RFC 9701 JWTs it signs itself, with the keys it
publishes at its JWKS (rotation included). Tests replace the answer
(``answer_hook``) to forge every kind of bad JWT.

GenAuth's paths: ``/oidc/token/introspection``, ``/oidc/token/revocation``,
``/oidc/.well-known/openid-configuration``, ``/oidc/.well-known/jwks.json``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from genauth_guard.dev.testing import serve_in_thread

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_MEDIA_TYPE = "application/token-introspection+jwt"
HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "256": hashes.SHA256,
    "384": hashes.SHA384,
    "512": hashes.SHA512,
}
CURVES = {"P-256": ec.SECP256R1, "P-384": ec.SECP384R1, "P-521": ec.SECP521R1}
SIZES = {"P-256": 32, "P-384": 48, "P-521": 66}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- keys


def new_key(kind: str) -> Any:
    """A fresh private key: ``RSA``, ``P-256``, ``P-384``, ``P-521`` or ``Ed25519``."""
    if kind == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "Ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(CURVES[kind]())


def pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _int_b64(value: int, size: int | None = None) -> str:
    length = size or (value.bit_length() + 7) // 8
    return b64url(value.to_bytes(length, "big"))


def public_jwk(key: Any) -> dict[str, str]:
    """The public JWK of a key (private or public), by hand."""
    public = key.public_key() if hasattr(key, "private_bytes") else key
    if isinstance(public, rsa.RSAPublicKey):
        numbers = public.public_numbers()
        return {"kty": "RSA", "n": _int_b64(numbers.n), "e": _int_b64(numbers.e)}
    if isinstance(public, ec.EllipticCurvePublicKey):
        crv = {v.name: k for k, v in CURVES.items()}[public.curve.name]
        point = public.public_numbers()
        size = SIZES[crv]
        return {"kty": "EC", "crv": crv, "x": _int_b64(point.x, size), "y": _int_b64(point.y, size)}
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def private_jwk(key: Any) -> dict[str, str]:
    """The private JWK of a key (``d`` and, for RSA, the CRT members)."""
    jwk = public_jwk(key)
    if isinstance(key, rsa.RSAPrivateKey):
        n = key.private_numbers()
        jwk.update(
            d=_int_b64(n.d), p=_int_b64(n.p), q=_int_b64(n.q),
            dp=_int_b64(n.dmp1), dq=_int_b64(n.dmq1), qi=_int_b64(n.iqmp),
        )  # fmt: skip
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        jwk["d"] = _int_b64(key.private_numbers().private_value, SIZES[jwk["crv"]])
    else:
        raw = key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        jwk["d"] = b64url(raw)
    return jwk


# ---------------------------------------------------------------- JWS by hand


def sign(signing_input: bytes, key: Any, alg: str) -> bytes:
    """The JWS signature of ``signing_input`` (RFC 7518 3), ``key`` a private key or secret."""
    if alg == "none":
        return b""
    digest = HASHES.get(alg[2:], hashes.SHA256)
    if alg.startswith("HS"):
        return hmac.new(key, signing_input, digest.name).digest()
    if alg.startswith("RS"):
        return key.sign(signing_input, padding.PKCS1v15(), digest())
    if alg.startswith("PS"):
        pss = padding.PSS(padding.MGF1(digest()), digest.digest_size)
        return key.sign(signing_input, pss, digest())
    if alg.startswith("ES"):
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(digest())))
        size = (key.curve.key_size + 7) // 8
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")
    return key.sign(signing_input)  # EdDSA


def verify(signing_input: bytes, signature: bytes, key: Any, alg: str) -> bool:
    """True if ``signature`` is ``key``'s for ``alg`` (public key, or the HMAC secret)."""
    digest = HASHES.get(alg[2:], hashes.SHA256)
    try:
        if alg.startswith("HS"):
            expected = hmac.new(key, signing_input, digest.name).digest()
            return hmac.compare_digest(expected, signature)
        if alg.startswith("RS"):
            key.verify(signature, signing_input, padding.PKCS1v15(), digest())
        elif alg.startswith("PS"):
            pss = padding.PSS(padding.MGF1(digest()), digest.digest_size)
            key.verify(signature, signing_input, pss, digest())
        elif alg.startswith("ES"):
            size = (key.curve.key_size + 7) // 8
            if len(signature) != 2 * size:
                return False
            r, s = int.from_bytes(signature[:size]), int.from_bytes(signature[size:])
            key.verify(encode_dss_signature(r, s), signing_input, ec.ECDSA(digest()))
        elif alg == "EdDSA":
            key.verify(signature, signing_input)
        else:
            return False
    except (InvalidSignature, TypeError, ValueError):
        return False
    return True


def compact(header: dict[str, Any], claims: Any, key: Any, alg: str | None = None) -> str:
    """A compact JWS; ``alg`` defaults to the header's."""
    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(payload)}".encode()
    signature = sign(signing_input, key, alg or header["alg"])
    return f"{signing_input.decode()}.{b64url(signature)}"


# ---------------------------------------------------------------- the server


@dataclass
class StrictClient:
    """A registered client: its method, and the secret or public key its assertions verify with."""

    client_id: str
    method: str  # client_secret_jwt | private_key_jwt
    alg: str
    secret: bytes | None = field(default=None, repr=False)
    public_key: Any = None


@dataclass
class SigningKey:
    kid: str | None
    key: Any
    alg: str


class StrictServer:
    """The server's state; ``app`` serves it. Tests read and change it between requests."""

    def __init__(self) -> None:
        self.url = "http://127.0.0.1"
        self.clients: dict[str, StrictClient] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.assertions: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.refusals: list[str] = []
        self.seen_jti: set[str] = set()
        self.signing: SigningKey | None = None
        self.published: list[dict[str, Any]] = []
        self.jwks_cache_control = "max-age=3600"
        self.jwks_status = 200
        self.jwks_fetches = 0
        self.introspections = 0
        self.fail_next = 0  # answer 503 this many times (to see retries)
        self.answer_hook: Callable[[dict[str, Any], str], tuple[str, bytes]] | None = None
        self.lock = threading.Lock()

    @property
    def issuer(self) -> str:
        return f"{self.url}/oidc"

    def register(self, client: StrictClient) -> None:
        self.clients[client.client_id] = client

    def mint(self, sub: str, scope: str = "orders:read", client_id: str = "rs") -> str:
        token = secrets.token_urlsafe(24)
        now = int(time.time())
        self.tokens[token] = {
            "active": True, "sub": sub, "scope": scope, "client_id": client_id,
            "exp": now + 600, "iat": now, "token_type": "Bearer", "iss": self.url,
        }  # fmt: skip
        return token

    def use_signing_key(self, key: Any, alg: str, kid: str | None, *, publish: bool = True) -> None:
        """Sign answers with ``key`` from now on (and publish it next to the old ones)."""
        self.signing = SigningKey(kid, key, alg)
        if publish:
            jwk = {**public_jwk(key), "use": "sig", "alg": alg}
            if kid is not None:
                jwk["kid"] = kid
            self.published.append(jwk)

    def signed_answer(self, inner: dict[str, Any], client_id: str) -> str:
        assert self.signing is not None
        header: dict[str, Any] = {"alg": self.signing.alg, "typ": "token-introspection+jwt"}
        if self.signing.kid is not None:
            header["kid"] = self.signing.kid
        claims = {
            "iss": self.issuer,
            "aud": client_id,
            "iat": int(time.time()),
            "token_introspection": inner,
        }
        return compact(header, claims, self.signing.key)

    def check_assertion(self, form: dict[str, str], request: Request) -> str:
        """The client id, if the request carries a valid assertion; else the reason (raised)."""
        if request.headers.get("authorization"):
            raise Refused("an Authorization header next to an assertion")
        if "client_secret" in form:
            raise Refused("a client_secret next to an assertion")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise Refused("client_assertion_type is not jwt-bearer")
        parts = form.get("client_assertion", "").split(".")
        if len(parts) != 3:
            raise Refused("client_assertion is not a compact JWS")
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        client = self.clients.get(form.get("client_id", ""))
        if client is None:
            raise Refused("unknown client_id")
        if header.get("alg") != client.alg:
            raise Refused(f"alg {header.get('alg')} is not the registered {client.alg}")
        key = client.secret if client.method == "client_secret_jwt" else client.public_key
        signing_input = f"{parts[0]}.{parts[1]}".encode()
        if not verify(signing_input, b64url_decode(parts[2]), key, client.alg):
            raise Refused("the signature does not verify")
        now = time.time()
        if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
            raise Refused("iss and sub must be the client_id")
        if claims.get("aud") not in (self.issuer, str(request.url)):
            raise Refused(f"aud {claims.get('aud')!r} is neither the issuer nor {request.url}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or len(jti) < 16:
            raise Refused("jti is missing or short")
        with self.lock:
            if jti in self.seen_jti:
                raise Refused("jti replayed")
            self.seen_jti.add(jti)
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not now - 5 <= iat <= now + 1:
            raise Refused("iat is not now")
        if not isinstance(exp, int) or not now < exp <= now + 61:
            raise Refused("exp is past or more than 60 s ahead")
        self.assertions.append((request.url.path, header, claims))
        return client.client_id

    @property
    def app(self) -> Starlette:
        return Starlette(routes=routes(self))

    @contextmanager
    def running(self) -> Iterator[str]:
        with serve_in_thread(self.app) as url:
            self.url = url
            yield url


class Refused(Exception):
    pass


def routes(server: StrictServer) -> list[Route]:
    async def authenticated(request: Request) -> tuple[str, dict[str, str]]:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        return server.check_assertion(form, request), form

    def refused(reason: str) -> Response:
        server.refusals.append(reason)
        return JSONResponse(
            {"error": "invalid_client", "error_description": reason}, status_code=401
        )

    async def introspect(request: Request) -> Response:
        try:
            client_id, form = await authenticated(request)
        except Refused as exc:
            return refused(str(exc))
        if server.fail_next > 0:  # after the check: the assertion's jti is spent
            server.fail_next -= 1
            return JSONResponse({"error": "temporarily_unavailable"}, status_code=503)
        server.introspections += 1
        token = form.get("token", "")
        inner = dict(server.tokens.get(token) or {"active": False})
        if JWT_MEDIA_TYPE not in request.headers.get("accept", ""):
            return JSONResponse(inner)
        if server.answer_hook is not None:
            content_type, body = server.answer_hook(inner, client_id)
        else:
            content_type, body = JWT_MEDIA_TYPE, server.signed_answer(inner, client_id).encode()
        return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    async def revoke(request: Request) -> Response:
        try:
            _, form = await authenticated(request)
        except Refused as exc:
            return refused(str(exc))
        server.tokens.pop(form.get("token", ""), None)
        return Response(status_code=200)

    async def jwks(request: Request) -> Response:
        server.jwks_fetches += 1
        if server.jwks_status != 200:
            return JSONResponse({"error": "down"}, status_code=server.jwks_status)
        return JSONResponse(
            {"keys": server.published}, headers={"Cache-Control": server.jwks_cache_control}
        )

    async def metadata(request: Request) -> Response:
        methods = ["private_key_jwt", "client_secret_jwt"]
        return JSONResponse(
            {
                "issuer": server.issuer,
                "introspection_endpoint": f"{server.issuer}/token/introspection",
                "revocation_endpoint": f"{server.issuer}/token/revocation",
                "jwks_uri": f"{server.issuer}/.well-known/jwks.json",
                "introspection_endpoint_auth_methods_supported": methods,
                "revocation_endpoint_auth_methods_supported": methods,
            }
        )

    return [
        Route("/oidc/token/introspection", introspect, methods=["POST"]),
        Route("/introspect", introspect, methods=["POST"]),
        Route("/oidc/token/revocation", revoke, methods=["POST"]),
        Route("/oidc/.well-known/jwks.json", jwks),
        Route("/oidc/.well-known/openid-configuration", metadata),
    ]


def thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638, by hand, to check the library's."""
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
    required = {name: jwk[name] for name in members[jwk["kty"]]}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return b64url(hashlib.sha256(canonical).digest())
