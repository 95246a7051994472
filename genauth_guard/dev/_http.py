"""The dev server's API endpoints: token, introspection, revocation, userinfo, discovery, JWKS.

Also the plumbing ``_login`` shares: form parsing, client authentication
and OAuth error answers. Kept apart from ``_store`` (the state and its
rules) so each stays small. Every check raises ``OAuthError``, which becomes
the RFC 6749 5.2 JSON answer (GenAuth's SDK parses every answer as JSON,
errors included); handlers only say what succeeds.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._client_auth import parse_basic_credentials
from ._model import DEFAULT_SUB, PROTOCOLS, DevClient, OAuthError, invalid_request, is_scope_token
from ._signing import signed_introspection, wants_signed_answer
from ._store import DevStore

MAX_FORM_BYTES: Final = 64 * 1024
NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
REALM: Final = "genauth-dev"


def error_response(error: OAuthError, *, bearer: bool = False) -> Response:
    """The JSON error answer; 401s carry the challenge of the scheme that was expected."""
    headers = dict(NO_STORE)
    if error.status == 401:
        if bearer:  # RFC 6750 3: no error code when no token was sent
            code = f', error="{error.error}"' if error.error != "invalid_request" else ""
            headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"{code}'
        else:
            headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    return JSONResponse(
        {"error": error.error, "error_description": error.description},
        status_code=error.status,
        headers=headers,
    )


def _invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


def unique_params(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict; RFC 6749 3.1 and 3.2: none may appear twice."""
    values: dict[str, str] = {}
    for name, value in pairs:
        if name in values:
            raise invalid_request(f"parameter {name} must appear once")
        values[name] = value
    return values


async def read_form(request: Request) -> dict[str, str]:
    """The form parameters (RFC 6749 3.2: urlencoded, each at most once)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise invalid_request("the body must be application/x-www-form-urlencoded")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise OAuthError(413, "invalid_request", "the form is too large")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise invalid_request("the form is not UTF-8") from None
    return unique_params(pairs)


def authenticate(server: DevStore, request: Request, form: Mapping[str, str]) -> DevClient:
    """The client, if it authenticated exactly as registered (RFC 6749 2.3, RFC 7523)."""
    if "client_assertion" in form or "client_assertion_type" in form:
        from ._signing import authenticate_assertion

        return authenticate_assertion(server, request, form)
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
        raise invalid_request("the token parameter is missing")
    return token


def _scope_param(form: Mapping[str, str]) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s for s in form.get("scope", "").split(" ") if s))
    if not all(is_scope_token(s) for s in scopes):
        raise OAuthError(
            400, "invalid_scope", "scope must be space-separated RFC 6749 scope tokens"
        )
    return scopes


def _resource_param(form: Mapping[str, str]) -> tuple[str, ...]:
    """RFC 8707 2: ``resource`` is an absolute URI without a fragment; it becomes ``aud``."""
    resource = form.get("resource")
    if not resource:
        return ()
    parts = urlsplit(resource)
    if not parts.scheme or not parts.netloc or "#" in resource:
        raise OAuthError(400, "invalid_target", "resource must be an absolute URI, no fragment")
    return (resource,)


def _token_response(
    token: str, lifetime: float, scopes: tuple[str, ...], token_type: str = "Bearer"
) -> Response:
    """RFC 6749 5.1; no refresh token (4.4.3)."""
    body = {
        "access_token": token,
        "token_type": token_type,
        "expires_in": int(lifetime),
        "scope": " ".join(scopes),
    }
    return JSONResponse(body, headers=NO_STORE)


def _bearer_token(request: Request) -> str:
    """The access token of ``Authorization: Bearer`` (RFC 6750 2.1), for ``/me``."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise OAuthError(401, "invalid_request", "send the access token as Authorization: Bearer")
    return token


def _protocol_of(request: Request) -> str:
    return request.url.path.split("/")[1]


Handler = Callable[[Request], Awaitable[Response]]


def routes(server: DevStore) -> list[Route]:
    """The API routes of ``server.app``, at GenAuth's paths for both protocols."""

    def answering(handler: Callable[[Request], Awaitable[Response]]) -> Handler:
        """Run ``handler``; an ``OAuthError`` it raises becomes the JSON error answer."""

        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except OAuthError as error:
                return error_response(error)

        return endpoint

    async def checked(request: Request) -> tuple[DevClient, dict[str, str]]:
        form = await read_form(request)
        return authenticate(server, request, form), form

    async def introspect(request: Request) -> Response:
        client, form = await checked(request)
        answer = server.introspect(_token_param(form))
        if wants_signed_answer(request):  # RFC 9701
            return signed_introspection(server, client, _protocol_of(request), answer)
        return JSONResponse(answer, headers=NO_STORE)

    async def revoke(request: Request) -> Response:
        # token_type_hint is only a hint (RFC 7009 2.1): every token type is searched.
        client, form = await checked(request)
        if not server.revoke_as(client.client_id, _token_param(form)):
            raise OAuthError(400, "unauthorized_client", "the token was issued to another client")
        return Response(status_code=200, headers=NO_STORE)

    async def token(request: Request) -> Response:
        client, form = await checked(request)
        grant_type = form.get("grant_type")
        protocol = _protocol_of(request)
        if not grant_type:
            raise invalid_request("the grant_type parameter is missing")
        if grant_type == "authorization_code":
            body = server.redeem_code(
                client,
                protocol,
                form.get("code"),
                form.get("redirect_uri"),
                form.get("code_verifier"),
            )
            return JSONResponse(body, headers=NO_STORE)
        if grant_type == "refresh_token":
            body = server.refresh(client, protocol, form.get("refresh_token"), form.get("scope"))
            return JSONResponse(body, headers=NO_STORE)
        if grant_type != "client_credentials":
            raise OAuthError(
                400,
                "unsupported_grant_type",
                "served grants: authorization_code, refresh_token, client_credentials",
            )
        if client.auth_method == "none":
            raise OAuthError(
                400, "unauthorized_client", "client_credentials is for confidential clients"
            )
        scopes = _scope_param(form)
        issued = server.mint(sub=None, scopes=scopes, client_id=client.client_id)
        return _token_response(issued, server.token_lifetime, scopes)

    async def dev_mint(request: Request) -> Response:
        """Not GenAuth's: form ``sub``, ``scope``, ``expires_in``, ``username``, ``resource``.

        ``resource`` (RFC 8707) becomes the token's ``aud``; ``jkt`` and
        ``x5t#S256`` bind the token to a DPoP key or a client certificate.
        Plus client auth.
        """
        client, form = await checked(request)
        scopes = _scope_param(form)
        audience = _resource_param(form)
        lifetime = server.token_lifetime
        if form.get("expires_in"):
            try:
                lifetime = int(form["expires_in"])
            except ValueError:
                raise invalid_request("expires_in must be whole seconds") from None
        try:
            issued = server.mint(
                sub=form.get("sub") or DEFAULT_SUB,
                scopes=scopes,
                expires_in=lifetime,
                client_id=client.client_id,
                username=form.get("username") or None,
                audience=audience,
                jkt=form.get("jkt") or None,
                x5t_s256=form.get("x5t#S256") or None,
            )
        except ValueError as exc:  # a jkt or x5t#S256 that is no thumbprint
            raise invalid_request(str(exc)) from None
        return _token_response(issued, lifetime, scopes, "DPoP" if form.get("jkt") else "Bearer")

    async def userinfo(request: Request) -> Response:
        """GenAuth's ``/{p}/me`` (OIDC Core 5.3): GET or POST with the bearer token."""
        try:
            claims = server.userinfo(_bearer_token(request))
        except OAuthError as error:
            return error_response(error, bearer=True)
        return JSONResponse(claims, headers=NO_STORE)

    async def discovery(request: Request) -> Response:
        protocol = request.path_params.get("p") or _protocol_of(request)
        if protocol not in PROTOCOLS:
            raise OAuthError(404, "not_found", "no such protocol; use oidc or oauth")
        return JSONResponse(server.metadata(protocol))

    async def jwks(request: Request) -> Response:
        return JSONResponse(server.signing_key.jwks())

    result = [
        Route("/dev/tokens", answering(dev_mint), methods=["POST"]),
        Route("/oidc/.well-known/jwks.json", answering(jwks)),
        Route("/.well-known/oauth-authorization-server/{p}", answering(discovery)),
    ]
    for p in PROTOCOLS:
        result += [
            Route(f"/{p}/token", answering(token), methods=["POST"]),
            Route(f"/{p}/token/introspection", answering(introspect), methods=["POST"]),
            Route(f"/{p}/token/revocation", answering(revoke), methods=["POST"]),
            Route(f"/{p}/me", userinfo, methods=["GET", "POST"]),
            Route(f"/{p}/.well-known/openid-configuration", answering(discovery)),
        ]
    return result
