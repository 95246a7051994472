"""Signed messages at the dev server: client assertions it checks, introspection answers it signs.

Clients registered with ``client_secret_jwt`` (their secret) or
``private_key_jwt`` (``DevClient.client_public_key``: PEM or a public JWK)
authenticate with an RFC 7523 assertion, checked here as a careful server
would: the registered method and key, ``iss`` = ``sub`` = the client,
``aud`` naming this server (an issuer ``{app_host}/{oidc|oauth}`` or the
URL called), ``exp`` in the future and at most five minutes ahead, and a
``jti`` never seen before (replays are refused while they could still be
valid). An introspection request that asks for
``application/token-introspection+jwt`` gets an RFC 9701 answer signed with
the server's key, the one its JWKS publishes.

Key rules and the JOSE library are the package's own (``.._jose``): the dev
server checks exactly what genauth-guard's users send.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

from starlette.requests import Request
from starlette.responses import Response

from .._jose import (
    ASYMMETRIC_ALGS,
    HMAC_ALGS,
    JoseError,
    jose_library,
    key_kind,
    load_public_jwk,
    unverified_header,
    verify_jws,
)
from ._model import DevClient, OAuthError

if TYPE_CHECKING:
    import threading

    from .._jose import PublicKey
    from ._jose import SigningKey

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
JWT_MEDIA_TYPE: Final = "application/token-introspection+jwt"
MAX_ASSERTION_LIFETIME: Final = 300
CLOCK_SKEW: Final = 30
SIGNED_METHODS: Final = ("client_secret_jwt", "private_key_jwt")


class DevStore(Protocol):
    """What the signing rules read of the dev server (``_store.DevStore`` is one).

    A protocol, not the class, so the store and these rules do not import
    each other.
    """

    clients: dict[str, DevClient]
    issuer: str
    assertion_ids: dict[str, float]
    _lock: threading.RLock

    @property
    def signing_key(self) -> SigningKey: ...

    def now(self) -> float: ...


def client_public_key(client: DevClient) -> PublicKey:
    """The public key a ``private_key_jwt`` client registered; ``ValueError`` if unusable."""
    material = client.client_public_key
    where = f"client {client.client_id!r} client_public_key"
    if material is None:
        raise ValueError(f"{where} is required for private_key_jwt (PEM or a public JWK)")
    jose_library("a private_key_jwt client")
    if isinstance(material, Mapping):
        try:
            return load_public_jwk(material)
        except JoseError as exc:
            raise ValueError(f"{where}: {exc}") from None
    if isinstance(material, str | bytes):
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        try:
            key = load_pem_public_key(material.encode() if isinstance(material, str) else material)
        except ValueError:
            raise ValueError(f"{where} is not a PEM public key") from None
        if key_kind(key) is None:
            raise ValueError(f"{where} is not an RSA, EC or Ed25519 key")
        return key  # type: ignore[return-value]
    raise ValueError(f"{where} must be PEM text or a public JWK mapping")


def client_key_pair(path: str) -> str:
    """The public PEM of the client key in ``path``, made first (P-256, mode 0600) if missing.

    For ``genauth-guard dev-server --auth-method private_key_jwt``: the
    private key stays in its file (the client reads it); the server keeps
    only the public half. An existing file is reused, so restarts keep the key.
    """
    jose_library("--auth-method private_key_jwt")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from .._jose import load_private_key

    if not os.path.exists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        data = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
    with open(path, "rb") as file:
        private = load_private_key(file.read(), option=f"the key in {path}")
    return (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def check_client(client: DevClient) -> None:
    """Refuse, at start-up, a signed-method client without what verifies its assertions."""
    if client.auth_method == "private_key_jwt":
        client_public_key(client)
    elif client.auth_method == "client_secret_jwt" and not client.client_secret:
        raise ValueError(f"client {client.client_id!r} needs a client_secret")


def _refused(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def _claims_of(token: str) -> Mapping[str, Any]:
    """The unverified claims, only to learn which client claims to be speaking."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise _refused("client_assertion is not a JWT") from None
    if not isinstance(claims, dict):
        raise _refused("client_assertion's claims are not an object")
    return claims


def authenticate_assertion(
    server: DevStore, request: Request, form: Mapping[str, str]
) -> DevClient:
    """The client a valid RFC 7523 assertion proves, else an ``invalid_client`` error."""
    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise _refused(f"client_assertion_type must be {ASSERTION_TYPE}")
    token = form.get("client_assertion", "")
    if "client_secret" in form or request.headers.get("authorization"):
        raise _refused("more than one client authentication method")
    claimed = _claims_of(token)
    client_id = form.get("client_id") or claimed.get("sub")
    client = server.clients.get(client_id) if isinstance(client_id, str) else None
    if client is None:
        raise _refused("unknown client, or no client authentication")
    if client.auth_method not in SIGNED_METHODS:
        raise _refused(f"this client must authenticate with {client.auth_method}")
    claims = _verified_claims(client, token)
    now = server.now()
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise _refused("the assertion's iss and sub must both be the client_id")
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else audiences
    ours = {f"{server.issuer}/{p}" for p in ("oidc", "oauth")} | {str(request.url)}
    if not isinstance(audiences, list) or not ours & set(audiences):
        raise _refused("the assertion's aud must be this server's issuer or the URL called")
    exp, iat, jti = claims.get("exp"), claims.get("iat"), claims.get("jti")
    if not isinstance(exp, int | float) or not now < exp <= now + MAX_ASSERTION_LIFETIME:
        raise _refused(f"the assertion's exp must be within {MAX_ASSERTION_LIFETIME} s ahead")
    if iat is not None and (not isinstance(iat, int | float) or iat > now + CLOCK_SKEW):
        raise _refused("the assertion's iat is in the future")
    if not isinstance(jti, str) or not jti:
        raise _refused("the assertion has no jti")
    _spend(server, jti, float(exp), now)
    return client


def _verified_claims(client: DevClient, token: str) -> Mapping[str, Any]:
    try:
        if client.auth_method == "private_key_jwt":
            return verify_jws(token, client_public_key(client), ASYMMETRIC_ALGS).claims
        jwt = jose_library("client_secret_jwt")
        alg = unverified_header(token).get("alg")
        if alg not in HMAC_ALGS:
            raise JoseError("client_secret_jwt assertions are signed with HS256, HS384 or HS512")
        secret = (client.client_secret or "").encode()
        decoded = jwt.api_jws.PyJWS().decode_complete(token, secret, algorithms=[alg])
        claims = json.loads(decoded["payload"])
    except JoseError as exc:
        raise _refused(f"client_assertion refused: {exc}") from None
    except Exception:
        raise _refused("client_assertion refused: the signature does not verify") from None
    if not isinstance(claims, Mapping):
        raise _refused("client_assertion's claims are not an object")
    return claims


def _spend(server: DevStore, jti: str, exp: float, now: float) -> None:
    """Remember ``jti`` until its assertion expires; a second use is a replay."""
    with server._lock:
        seen = server.assertion_ids
        for old in [key for key, until in seen.items() if until < now]:
            del seen[old]
        if jti in seen:
            raise _refused("the assertion's jti was used before (a replay)")
        seen[jti] = exp


def wants_signed_answer(request: Request) -> bool:
    """True when the client asked for an RFC 9701 answer."""
    return JWT_MEDIA_TYPE in request.headers.get("accept", "").lower()


def signed_introspection(
    server: DevStore, client: DevClient, protocol: str, answer: Mapping[str, Any]
) -> Response:
    """The RFC 9701 answer: ``answer`` as ``token_introspection``, signed with the JWKS key."""
    claims = {
        "iss": f"{server.issuer}/{protocol}",
        "aud": client.client_id,
        "iat": int(server.now()),
        "token_introspection": dict(answer),
    }
    token = server.signing_key.sign(claims, typ="token-introspection+jwt")
    return Response(
        token,
        media_type=JWT_MEDIA_TYPE,
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
