"""An embedded development authorization server that behaves like GenAuth.

For demos and tests only: tokens live in memory, there are no users, no
consent and no persistence. It binds 127.0.0.1 by default. What it does
implement, it implements by the RFCs: the paths GenAuth's SDK builds
(``/{oidc|oauth}/token``, ``/token/introspection``, ``/token/revocation``),
strict client authentication per registered client (``client_secret_post``,
``client_secret_basic`` or ``none``; anything else is 401
``invalid_client``), RFC 7662 answers as GenAuth gives them, RFC 7009
revocation and the discovery document.

Use it from Python (``DevAuthServer().mint(sub=..., scopes=...)``), from the
command line (``genauth-guard dev-server``) or from pytest (the
``genauth_dev_server`` fixture).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .client_auth import AuthMethod, check_auth_method, parse_basic_credentials

PROTOCOLS = ("oidc", "oauth")
DEFAULT_CLIENT_ID = "dev-client"


@dataclass(frozen=True)
class DevClient:
    """A client registered at the dev server, and how it must authenticate."""

    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: AuthMethod = "client_secret_post"


@dataclass
class _Token:
    sub: str | None
    scopes: tuple[str, ...]
    client_id: str
    exp: int
    iat: int
    jti: str
    nbf: int | None = None
    aud: tuple[str, ...] = ()
    username: str | None = None
    revoked: bool = False


class DevAuthServer:
    """In-memory GenAuth-like authorization server (a Starlette app at ``.app``).

    ``issuer`` is the public base URL the server is reached at (``app_host``
    in GenAuth terms); set it once the port is known, it only shows in answers.
    ``introspection_calls`` counts introspection requests, per answer, so
    tests can check caching and single flight from the server's side.
    """

    def __init__(
        self,
        clients: Iterable[DevClient] | None = None,
        *,
        token_lifetime: int = 3600,
        issuer: str = "http://127.0.0.1",
    ) -> None:
        if clients is None:
            clients = [DevClient(DEFAULT_CLIENT_ID, secrets.token_hex(16))]
        self.clients: dict[str, DevClient] = {}
        for client in clients:
            check_auth_method(client.auth_method)
            self.clients[client.client_id] = client
        if not self.clients:
            raise ValueError("DevAuthServer needs at least one client")
        self.token_lifetime = token_lifetime
        self.issuer = issuer.rstrip("/")
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.introspection_calls = 0
        self.introspected: Counter[str] = Counter()
        self.app = Starlette(routes=self._routes())

    @property
    def client(self) -> DevClient:
        """The first registered client (the default one)."""
        return next(iter(self.clients.values()))

    # ------------------------------------------------------------ tokens

    def mint(
        self,
        sub: str | None = "user-1",
        scopes: Iterable[str] | str = (),
        *,
        expires_in: float | None = None,
        client_id: str | None = None,
        not_before: float | None = None,
        audience: Iterable[str] | str = (),
        username: str | None = None,
    ) -> str:
        """Issue an access token for ``sub`` with ``scopes``; returns the opaque token."""
        if isinstance(scopes, str):
            scopes = scopes.split()
        if isinstance(audience, str):
            audience = (audience,)
        now = time.time()
        lifetime = self.token_lifetime if expires_in is None else expires_in
        token = secrets.token_urlsafe(32)
        record = _Token(
            sub=sub,
            scopes=tuple(scopes),
            client_id=client_id or self.client.client_id,
            exp=int(now + lifetime),
            iat=int(now),
            jti=secrets.token_hex(8),
            nbf=None if not_before is None else int(not_before),
            aud=tuple(audience),
            username=username,
        )
        with self._lock:
            self._tokens[token] = record
        return token

    def revoke(self, token: str) -> None:
        """Revoke ``token`` (unknown tokens are ignored, as RFC 7009 says)."""
        with self._lock:
            record = self._tokens.get(token)
            if record is not None:
                record.revoked = True

    def answer(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for ``token``, shaped like GenAuth's."""
        with self._lock:
            record = self._tokens.get(token)
        now = time.time()
        if record is None or record.revoked or now >= record.exp:
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "client_id": record.client_id,
            "exp": record.exp,
            "iat": record.iat,
            "iss": self.issuer,
            "jti": record.jti,
            "scope": " ".join(record.scopes),
            "token_type": "Bearer",
        }
        if record.sub is not None:
            answer["sub"] = record.sub
        if record.username is not None:
            answer["username"] = record.username
        if record.nbf is not None:
            answer["nbf"] = record.nbf
        if record.aud:
            answer["aud"] = record.aud[0] if len(record.aud) == 1 else list(record.aud)
        return answer

    # ------------------------------------------------------------ HTTP

    def _routes(self) -> list[Route]:
        routes = [Route("/dev/tokens", self._dev_mint, methods=["POST"])]
        for p in PROTOCOLS:
            routes += [
                Route(f"/{p}/token", self._token, methods=["POST"]),
                Route(f"/{p}/token/introspection", self._introspect, methods=["POST"]),
                Route(f"/{p}/token/revocation", self._revoke, methods=["POST"]),
                Route(f"/{p}/.well-known/openid-configuration", self._discovery),
                Route(f"/{p}/.well-known/jwks.json", self._jwks),
            ]
        routes.append(Route("/.well-known/oauth-authorization-server/{p}", self._discovery))
        return routes

    async def _form(self, request: Request) -> Mapping[str, str] | Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            return _oauth_error(
                400, "invalid_request", "the body must be application/x-www-form-urlencoded"
            )
        try:
            pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        except UnicodeDecodeError:
            return _oauth_error(400, "invalid_request", "the body is not UTF-8")
        values: dict[str, str] = {}
        for name, value in pairs:
            if name in values:
                return _oauth_error(400, "invalid_request", f"parameter {name} must appear once")
            values[name] = value
        return values

    def _authenticate(self, request: Request, form: Mapping[str, str]) -> DevClient | Response:
        """The client, if it authenticated exactly as registered (RFC 6749 2.3)."""
        header = request.headers.get("authorization")
        basic = parse_basic_credentials(header) if header else None
        if header and basic is None:
            return _invalid_client("the Authorization header is not valid HTTP Basic")
        client_id = basic[0] if basic else form.get("client_id")
        client = self.clients.get(client_id or "")
        if client is None:
            return _invalid_client("unknown client")
        used: str
        if basic is not None:
            used = "client_secret_basic"
            secret: str | None = basic[1]
            if "client_secret" in form:
                return _invalid_client("more than one client authentication method")
        elif "client_secret" in form:
            used, secret = "client_secret_post", form["client_secret"]
        else:
            used, secret = "none", None
        if used != client.auth_method:
            return _invalid_client(f"this client must authenticate with {client.auth_method}")
        if client.auth_method != "none" and not secrets.compare_digest(
            (secret or "").encode(), (client.client_secret or "").encode()
        ):
            return _invalid_client("wrong client secret")
        return client

    async def _authenticated_form(
        self, request: Request
    ) -> tuple[DevClient, Mapping[str, str]] | Response:
        form = await self._form(request)
        if isinstance(form, Response):
            return form
        client = self._authenticate(request, form)
        if isinstance(client, Response):
            return client
        return client, form

    async def _introspect(self, request: Request) -> Response:
        checked = await self._authenticated_form(request)
        if isinstance(checked, Response):
            return checked
        _, form = checked
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "the token parameter is missing")
        answer = self.answer(token)
        with self._lock:
            self.introspection_calls += 1
            self.introspected["active" if answer["active"] else "inactive"] += 1
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    async def _revoke(self, request: Request) -> Response:
        checked = await self._authenticated_form(request)
        if isinstance(checked, Response):
            return checked
        client, form = checked
        token = form.get("token")
        if not token:
            return _oauth_error(400, "invalid_request", "the token parameter is missing")
        hint = form.get("token_type_hint")
        if hint not in (None, "access_token", "refresh_token"):
            return _oauth_error(400, "unsupported_token_type", "only access tokens are revoked")
        with self._lock:
            record = self._tokens.get(token)
            if record is not None and record.client_id == client.client_id:
                record.revoked = True
        return Response(status_code=200)

    async def _token(self, request: Request) -> Response:
        checked = await self._authenticated_form(request)
        if isinstance(checked, Response):
            return checked
        client, form = checked
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials is served")
        if client.auth_method == "none":
            return _invalid_client("a public client cannot use client_credentials")
        scopes = form.get("scope", "").split()
        token = self.mint(sub=None, scopes=scopes, client_id=client.client_id)
        return JSONResponse(
            {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": " ".join(scopes),
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def _dev_mint(self, request: Request) -> Response:
        """Dev-only: ``POST /dev/tokens`` with JSON ``{"sub", "scope", "expires_in"}``."""
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError
            sub = data.get("sub", "user-1")
            scope = data.get("scope", "")
            expires_in = data.get("expires_in")
            if not isinstance(scope, str) or (sub is not None and not isinstance(sub, str)):
                raise ValueError
            if expires_in is not None and not isinstance(expires_in, int | float):
                raise ValueError
        except ValueError:
            return _oauth_error(
                400, "invalid_request", 'send JSON {"sub": str, "scope": str, "expires_in": int}'
            )
        lifetime = self.token_lifetime if expires_in is None else expires_in
        token = self.mint(sub=sub, scopes=scope, expires_in=lifetime)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": lifetime, "scope": scope}
        )

    def metadata(self, protocol: str = "oidc") -> dict[str, Any]:
        """The discovery document (issuer ``{app_host}/{protocol}``, as GenAuth serves it)."""
        base = f"{self.issuer}/{protocol}"
        methods = sorted({c.auth_method for c in self.clients.values()})
        return {
            "issuer": base,
            "token_endpoint": f"{base}/token",
            "introspection_endpoint": f"{base}/token/introspection",
            "revocation_endpoint": f"{base}/token/revocation",
            "jwks_uri": f"{self.issuer}/oidc/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "response_types_supported": ["code"],
        }

    async def _discovery(self, request: Request) -> Response:
        protocol = request.path_params.get("p") or request.url.path.split("/")[1]
        if protocol not in PROTOCOLS:
            return _oauth_error(404, "not_found", "no such protocol")
        return JSONResponse(self.metadata(protocol))

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": []})


def _oauth_error(status: int, error: str, description: str) -> Response:
    return JSONResponse(
        {"error": error, "error_description": description},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


def _invalid_client(description: str) -> Response:
    response = _oauth_error(401, "invalid_client", description)
    response.headers["WWW-Authenticate"] = 'Basic realm="genauth-dev"'
    return response
