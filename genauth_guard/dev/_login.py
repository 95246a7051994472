"""The dev server's browser pages: authorize, the login form, logout.

``GET /{oidc|oauth}/auth`` checks the authorization request, then signs in
without a page when it can (``auto_approve``, or a live session cookie) and
otherwise shows a plain HTML form: one radio button per dev user, Approve
and Deny, posted to ``POST /dev/login`` (no JavaScript; the request waits
on the server under an opaque id, so the form cannot be edited into another
request). Approval redirects to the client's registered ``redirect_uri``
with ``code``, ``state`` and ``iss`` (RFC 9207).

Logout is GenAuth's two URLs, as the SDK's ``build_logout_url`` builds them:
``/oidc/session/end`` (``id_token_hint``, ``post_logout_redirect_uri``,
``state``) and ``/login/profile/logout`` (``redirect_uri``). Both end the
session and redirect only to a registered post-logout URI.
"""

from __future__ import annotations

import html
from typing import Final
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from ._authorize import AuthorizationRequest, check_request, check_target, redirect_with
from ._http import NO_STORE, read_form, unique_params
from ._model import PROTOCOLS, OAuthError, invalid_request
from ._store import DevStore

SESSION_COOKIE: Final = "genauth_dev_session"
_PAGE_HEADERS: Final = {
    **NO_STORE,
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "Referrer-Policy": "no-referrer",
}
_STYLE: Final = (
    "body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;padding:.4rem 0}code{background:#eee;padding:0 .2rem}"
    "button{margin:1rem .5rem 0 0;padding:.4rem 1rem}"
)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=_PAGE_HEADERS)


def _error_page(error: OAuthError) -> HTMLResponse:
    """An error that must not be redirected (unknown client or redirect URI, RFC 6749 4.1.2.1)."""
    return _page(
        "Cannot sign in",
        f"<p><code>{html.escape(error.error)}</code>: {html.escape(error.description)}</p>",
        error.status,
    )


def _query(request: Request) -> dict[str, str]:
    return unique_params(parse_qsl(request.url.query, keep_blank_values=True))


def _redirect(location: str, session_id: str | None = None, *, clear: bool = False) -> Response:
    response = RedirectResponse(location, status_code=303, headers=NO_STORE)
    if session_id is not None:
        response.set_cookie(SESSION_COOKIE, session_id, httponly=True, samesite="lax", path="/")
    if clear:
        response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def routes(server: DevStore) -> list[Route]:
    """The browser routes of ``server.app``."""

    def answer_back(request: AuthorizationRequest, **params: str | None) -> str:
        """The redirect URI with the answer, ``state`` and ``iss`` (RFC 9207)."""
        issuer = f"{server.issuer}/{request.protocol}"
        return redirect_with(
            request.redirect_uri, {**params, "state": request.state, "iss": issuer}
        )

    def signed_in(request: AuthorizationRequest, sub: str, session_id: str | None) -> Response:
        code, session_id = server.approve(request, sub, session_id)
        return _redirect(answer_back(request, code=code), session_id)

    def login_form(request: AuthorizationRequest, error: str | None = None) -> Response:
        request_id = server.hold(request)
        preselected = request.login_hint if request.login_hint in server.users else None
        preselected = preselected or next(iter(server.users), None)
        choices = "".join(
            f'<label><input type="radio" name="user" value="{html.escape(user.sub)}"'
            f"{' checked' if user.sub == preselected else ''}> "
            f"{html.escape(user.display_name)} <small>({html.escape(user.sub)}"
            f"{', ' + html.escape(user.email) if user.email else ''})</small></label>"
            for user in server.users.values()
        )
        scopes = " ".join(f"<code>{html.escape(s)}</code>" for s in request.scopes) or "none"
        notice = f"<p><strong>{html.escape(error)}</strong></p>" if error else ""
        body = (
            f"{notice}<p><code>{html.escape(request.client_id)}</code> asks to sign you in "
            f"(scopes: {scopes}). This is the genauth-guard dev server: no passwords, "
            "pick a user.</p>"
            '<form method="post" action="/dev/login">'
            f'<input type="hidden" name="request_id" value="{html.escape(request_id)}">'
            f"{choices}"
            '<button type="submit" name="action" value="approve">Approve</button>'
            '<button type="submit" name="action" value="deny">Deny</button>'
            "</form>"
        )
        return _page("Sign in to the dev server", body)

    async def authorize(request: Request) -> Response:
        protocol = request.url.path.split("/")[1]
        try:
            params = _query(request)
            client, redirect_uri, sent = check_target(server.clients, params)
        except OAuthError as error:
            return _error_page(error)
        try:
            checked = check_request(protocol, client, redirect_uri, sent, params)
            session_id = request.cookies.get(SESSION_COOKIE)
            user = server.auto_approve_user(checked.login_hint)
            if user is None and "login" not in checked.prompt:
                user = server.session_user(session_id)
                if checked.login_hint is not None and user != checked.login_hint:
                    user = None  # signed in as someone else: let the user choose
            if user is not None:
                return signed_in(checked, user, session_id)
            if "none" in checked.prompt:
                raise OAuthError(400, "login_required", "no one is signed in and prompt=none")
        except OAuthError as error:
            state = params.get("state")
            issuer = f"{server.issuer}/{protocol}"
            answer = {
                "error": error.error,
                "error_description": error.description,
                "state": state,
                "iss": issuer,
            }
            return _redirect(redirect_with(redirect_uri, answer))
        return login_form(checked)

    async def login(request: Request) -> Response:
        try:
            form = await read_form(request)
            held = server.take(form.get("request_id", ""))
        except OAuthError as error:
            return _error_page(error)
        if form.get("action") == "deny":
            return _redirect(
                answer_back(held, error="access_denied", error_description="the user said no")
            )
        user = form.get("user", "")
        if user not in server.users:
            return login_form(held, "Pick one of the users.")
        return signed_in(held, user, request.cookies.get(SESSION_COOKIE))

    async def end_session(request: Request) -> Response:
        """OpenID Connect RP-Initiated Logout 1.0 (GET or POST)."""
        try:
            params = _query(request) if request.method == "GET" else await read_form(request)
            session_id, target = server.logout_target(
                params.get("id_token_hint"),
                params.get("client_id"),
                params.get("post_logout_redirect_uri"),
            )
        except OAuthError as error:
            return _error_page(error)
        server.end_sessions([session_id, request.cookies.get(SESSION_COOKIE)])
        if target is None:
            return _signed_out()
        return _redirect(redirect_with(target, {"state": params.get("state")}), clear=True)

    async def profile_logout(request: Request) -> Response:
        """GenAuth's ``/login/profile/logout?redirect_uri=...`` (the SDK's logout for oauth)."""
        try:
            params = _query(request)
            target = params.get("redirect_uri")
            if target is not None and not server.any_post_logout_uri(target):
                raise invalid_request(
                    f"{target!r} is not a registered post-logout redirect URI of any client"
                )
        except OAuthError as error:
            return _error_page(error)
        server.end_sessions([request.cookies.get(SESSION_COOKIE)])
        if target is None:
            return _signed_out()
        return _redirect(target, clear=True)

    def _signed_out() -> Response:
        response = _page("Signed out", "<p>You are signed out of the dev server.</p>")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    result = [
        Route("/dev/login", login, methods=["POST"]),
        Route("/oidc/session/end", end_session, methods=["GET", "POST"]),
        Route("/login/profile/logout", profile_logout, methods=["GET"]),
    ]
    result += [Route(f"/{p}/auth", authorize, methods=["GET"]) for p in PROTOCOLS]
    return result
