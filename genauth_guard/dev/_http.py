"""The dev server's HTTP endpoints: form parsing, client authentication, OAuth errors.

Kept apart from ``_store`` (the token store and its Python API) so each
stays small. Every check raises ``_Refused``, which becomes the RFC 6749 5.2
error answer; handlers only say what succeeds.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._client_auth import parse_basic_credentials
from ._model import DEFAULT_SUB, DevClient, is_scope_token
from ._store import DevStore

MAX_FORM_BYTES: Final = 64 * 1024
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class _Refused(Exception):
    """An OAuth error answer (RFC 6749 5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description

    def response(self) -> Response:
        headers = dict(_NO_STORE)
        if self.status == 401:
            headers["WWW-Authenticate"] = 'Basic realm="genauth-dev"'
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers=headers,
        )


def _invalid_client(description: str) -> _Refused:
    return _Refused(401, "invalid_client", description)


def _invalid_request(description: str) -> _Refused:
    return _Refused(400, "invalid_request", description)


async def _form(request: Request) -> dict[str, str]:
    """The form parameters (RFC 6749 3.2: urlencoded, each at most once)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _invalid_request("the body must be application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _Refused(413, "invalid_request", "the form is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise _invalid_request("the form is not UTF-8") from None
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise _invalid_request(f"parameter {name} must appear once")
        values[name] = value
    return values


def _authenticate(server: DevStore, request: Request, form: Mapping[str, str]) -> DevClient:
    """The client, if it authenticated exactly as registered (RFC 6749 2.3)."""
    header = request.headers.get("authorization")
    basic = parse_basic_credentials(header) if header else None
    if header and basic is None:
        raise _invalid_client("the Authorization header is not valid HTTP Basic")
    if basic is not None and form.get("client_id", basic[0]) != basic[0]:
        raise _invalid_client("client_id in the form differs from the Basic credentials")
    client = server.clients.get((basic[0] if basic else form.get("client_id")) or "")
    if client is None:
        raise _invalid_client("unknown client, or no client authentication")
    secret: str | None
    if basic is not None:
        used, secret = "client_secret_basic", basic[1]
        if "client_secret" in form:
            raise _invalid_client("more than one client authentication method")
    elif "client_secret" in form:
        used, secret = "client_secret_post", form["client_secret"]
    else:
        used, secret = "none", None
    if used != client.auth_method:
        raise _invalid_client(f"this client must authenticate with {client.auth_method}")
    if client.auth_method != "none" and not secrets.compare_digest(
        (secret or "").encode(), (client.client_secret or "").encode()
    ):
        raise _invalid_client("wrong client secret")
    return client


def _token_param(form: Mapping[str, str]) -> str:
    token = form.get("token")
    if not token:
        raise _invalid_request("the token parameter is missing")
    return token


def _scope_param(form: Mapping[str, str]) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s for s in form.get("scope", "").split(" ") if s))
    if not all(is_scope_token(s) for s in scopes):
        raise _Refused(400, "invalid_scope", "scope must be space-separated RFC 6749 scope tokens")
    return scopes


def _token_response(token: str, lifetime: float, scopes: tuple[str, ...]) -> Response:
    """RFC 6749 5.1; no refresh token (4.4.3)."""
    body = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(lifetime),
        "scope": " ".join(scopes),
    }
    return JSONResponse(body, headers=_NO_STORE)


def routes(server: DevStore) -> list[Route]:
    """The routes of ``server.app``, at GenAuth's paths for both protocols."""

    async def checked(request: Request) -> tuple[DevClient, dict[str, str]]:
        form = await _form(request)
        return _authenticate(server, request, form), form

    async def introspect(request: Request) -> Response:
        try:
            _, form = await checked(request)
            token = _token_param(form)
        except _Refused as refused:
            return refused.response()
        return JSONResponse(server.introspect(token), headers=_NO_STORE)

    async def revoke(request: Request) -> Response:
        # token_type_hint is only a hint (RFC 7009 2.1): every token type is searched.
        try:
            client, form = await checked(request)
            if not server.revoke_as(client.client_id, _token_param(form)):
                raise _Refused(400, "unauthorized_client", "the token was issued to another client")
        except _Refused as refused:
            return refused.response()
        return Response(status_code=200, headers=_NO_STORE)

    async def token(request: Request) -> Response:
        try:
            client, form = await checked(request)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise _invalid_request("the grant_type parameter is missing")
            if grant_type != "client_credentials":
                raise _Refused(400, "unsupported_grant_type", "only client_credentials is served")
            if client.auth_method == "none":
                raise _Refused(
                    400, "unauthorized_client", "client_credentials is for confidential clients"
                )
            scopes = _scope_param(form)
        except _Refused as refused:
            return refused.response()
        issued = server.mint(sub=None, scopes=scopes, client_id=client.client_id)
        return _token_response(issued, server.token_lifetime, scopes)

    async def dev_mint(request: Request) -> Response:
        """Not GenAuth's: form ``sub``, ``scope``, ``expires_in``, ``username`` + client auth."""
        try:
            client, form = await checked(request)
            scopes = _scope_param(form)
            lifetime = server.token_lifetime
            if form.get("expires_in"):
                try:
                    lifetime = int(form["expires_in"])
                except ValueError:
                    raise _invalid_request("expires_in must be whole seconds") from None
        except _Refused as refused:
            return refused.response()
        issued = server.mint(
            sub=form.get("sub") or DEFAULT_SUB,
            scopes=scopes,
            expires_in=lifetime,
            client_id=client.client_id,
            username=form.get("username") or None,
        )
        return _token_response(issued, lifetime, scopes)

    async def discovery(request: Request) -> Response:
        protocol = request.path_params.get("p") or request.url.path.split("/")[1]
        if protocol not in ("oidc", "oauth"):
            return _Refused(404, "not_found", "no such protocol; use oidc or oauth").response()
        return JSONResponse(server.metadata(protocol))

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": []})  # opaque tokens only: nothing to verify offline

    result = [
        Route("/dev/tokens", dev_mint, methods=["POST"]),
        Route("/oidc/.well-known/jwks.json", jwks),
        Route("/.well-known/oauth-authorization-server/{p}", discovery),
    ]
    for p in ("oidc", "oauth"):
        result += [
            Route(f"/{p}/token", token, methods=["POST"]),
            Route(f"/{p}/token/introspection", introspect, methods=["POST"]),
            Route(f"/{p}/token/revocation", revoke, methods=["POST"]),
            Route(f"/{p}/.well-known/openid-configuration", discovery),
        ]
    return result
