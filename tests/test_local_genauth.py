"""A local GenAuth: GenAuth's own Python SDK runs the whole login-to-API flow here.

Everything is real: the dev server and an API behind ``GenAuthGuard`` are
uvicorn servers on 127.0.0.1, the front end is ``genauth.AuthenticationClient``
5.1.0 (it speaks HTTP with ``requests``), and the browser is an
``httpx.Client`` with a cookie jar that reads the login page and posts it.
The SDK is used as it is, quirks included (it never checks an HTTP status,
so an error comes back as the error's JSON; its OAuth authorize URL drops
PKCE and nonce; ``revoke_token`` always says True).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import jwt
import pytest
from genauth import AuthenticationClient
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, get_token_info
from genauth_guard.dev.server import DevAuthServer, DevClient, DevUser
from genauth_guard.dev.testing import serve_in_thread

# The front end's URLs. Nothing listens there: like a browser, the tests read
# the redirect's Location and stop, so they never follow a redirect off the server.
CALLBACK = "http://127.0.0.1:8765/callback"
HOME = "http://127.0.0.1:8765/"
SECRETS = {
    method: secrets.token_hex(16) for method in ("client_secret_post", "client_secret_basic")
}
CLIENTS = {
    "client_secret_post": DevClient(
        "web-post", SECRETS["client_secret_post"], "client_secret_post", [CALLBACK], [HOME]
    ),
    "client_secret_basic": DevClient(
        "web-basic", SECRETS["client_secret_basic"], "client_secret_basic", [CALLBACK], [HOME]
    ),
    "none": DevClient("spa-public", None, "none", [CALLBACK], [HOME]),
}
ALICE = DevUser(
    "alice",
    name="Alice Liddell",
    username="alice",
    email="alice@example.com",
    email_verified=True,
    phone_number="+15550101",
    picture="https://example.com/alice.png",
    updated_at=1_700_000_000,
)
BOB = DevUser("bob", name="Bob <b>Builder</b>", email="bob@example.com")
METHODS = tuple(CLIENTS)
PROTOCOLS = ("oidc", "oauth")
# What each protocol's front end asks for: the OIDC scopes, or GenAuth's OAuth ``user``.
SCOPES = {"oidc": "openid profile email offline_access", "oauth": "user offline_access"}


@dataclass
class Local:
    server: DevAuthServer
    url: str
    api: str  # an API behind GenAuthGuard whose introspector uses /oidc
    api_oauth: str  # the same API, introspecting at /oauth


@asynccontextmanager
async def _closing(introspector: Introspector) -> AsyncIterator[None]:
    yield
    await introspector.aclose()


def _api(introspector: Introspector) -> Starlette:
    async def whoami(request: Request) -> JSONResponse:
        info = get_token_info(request)
        assert info is not None
        return JSONResponse(
            {"sub": request.user.identity, "scopes": sorted(info.scopes), "client": info.client_id}
        )

    return Starlette(
        routes=[Route("/whoami", whoami)],
        middleware=[Middleware(GenAuthGuard, introspector=introspector)],
        lifespan=lambda app: _closing(introspector),
    )


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    """The dev server with three clients and two users, and the API behind the guard."""
    server = DevAuthServer(CLIENTS.values(), users=[ALICE, BOB])
    with server.running() as url:
        apis = []
        stack = []
        for protocol in PROTOCOLS:
            # The API authenticates as the web app (GenAuth's app id and secret);
            # cache_ttl=0 so a revocation shows at the next request.
            introspector = Introspector.from_genauth(
                app_id="web-post",
                secret=SECRETS["client_secret_post"],
                app_host=url,
                protocol=protocol,
                cache_ttl=0,
            )
            serving = serve_in_thread(_api(introspector))
            apis.append(serving.__enter__())
            stack.append(serving)
        try:
            yield Local(server, url, apis[0], apis[1])
        finally:
            for serving in reversed(stack):
                serving.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def no_client_secret_in_any_log(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """conftest checks its own clients' secrets and every minted token; these are ours."""
    yield
    for record in (*caplog.get_records("setup"), *caplog.get_records("call")):
        if record.name.startswith("genauth_guard"):
            text = record.getMessage()
            assert not any(s in text for s in SECRETS.values()), record.name


@pytest.fixture
def browser(local: Local) -> Iterator[httpx.Client]:
    """A browser without JavaScript: a cookie jar that reads pages and submits forms."""
    with httpx.Client(base_url=local.url, follow_redirects=False) as client:
        yield client


def sdk_for(local: Local, protocol: str, method: str, **options: Any) -> AuthenticationClient:
    client = CLIENTS[method]
    return AuthenticationClient(
        app_id=client.client_id,
        app_host=local.url,
        app_secret=client.client_secret,
        protocol=protocol,
        token_endpoint_auth_method=method,
        introspection_endpoint_auth_method=method,
        revocation_endpoint_auth_method=method,
        redirect_uri=options.pop("redirect_uri", CALLBACK),
        post_logout_redirect_uri=HOME,
        **options,
    )


def api_url(local: Local, protocol: str) -> str:
    return (local.api if protocol == "oidc" else local.api_oauth) + "/whoami"


def call_api(local: Local, protocol: str, token: str) -> httpx.Response:
    return httpx.get(api_url(local, protocol), headers={"Authorization": f"Bearer {token}"})


def pkce_pair(sdk: AuthenticationClient, method: str = "S256") -> tuple[str, str]:
    verifier = sdk.generate_code_challenge()
    return verifier, sdk.generate_code_challenge_digest(verifier, method)


def authorize_url(
    sdk: AuthenticationClient,
    protocol: str,
    *,
    state: str,
    challenge: str | None,
    method: str = "S256",
    nonce: str | None = None,
    scope: str | None = None,
    **extra: str,
) -> str:
    """The SDK's authorize URL. Its OAuth builder drops PKCE: the front end appends it."""
    url: str = sdk.build_authorize_url(
        scope=scope or SCOPES[protocol],
        state=state,
        nonce=nonce,
        code_challenge=challenge,
        code_challenge_method=method if challenge else None,
    )
    if protocol == "oauth" and challenge:
        assert "code_challenge" not in url  # the SDK quirk this works around
        extra = {"code_challenge": challenge, "code_challenge_method": method, **extra}
    return f"{url}&{urlencode(extra)}" if extra else url


def callback(location: str) -> dict[str, str]:
    """The parameters the server sent to the front end's callback (which must be CALLBACK)."""
    assert location.startswith(CALLBACK + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query, strict_parsing=True).items()}


def sign_in(browser: httpx.Client, url: str, user: str = "alice", action: str = "approve") -> str:
    """Open the authorize URL, read the login form, submit it; returns the redirect Location."""
    page = browser.get(url)
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<script" not in page.text.lower()
    form = re.search(r'<form method="post" action="([^"]+)">', page.text)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    assert form is not None and fields, page.text
    assert f'name="user" value="{user}"' in page.text
    answer = browser.post(
        urljoin(str(page.url), form.group(1)), data={**fields, "user": user, "action": action}
    )
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def code_for(
    browser: httpx.Client, sdk: AuthenticationClient, protocol: str, challenge: str | None
) -> str:
    state = secrets.token_urlsafe(8)
    answer = callback(
        sign_in(browser, authorize_url(sdk, protocol, state=state, challenge=challenge))
    )
    assert answer["state"] == state
    return answer["code"]


# ---------------------------------------------------------------- the whole flow


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_sdk_runs_the_whole_login_to_api_flow(
    local: Local, browser: httpx.Client, protocol: str, method: str
) -> None:
    sdk = sdk_for(local, protocol, method)
    client_id = CLIENTS[method].client_id

    # 1. Authorize URL from the SDK; the browser signs in at the form; a code comes back.
    verifier, challenge = pkce_pair(sdk)
    state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
    url = authorize_url(sdk, protocol, state=state, nonce=nonce, challenge=challenge)
    assert url.startswith(f"{local.url}/{protocol}/auth?")
    answer = callback(sign_in(browser, url))
    assert answer["state"] == state
    assert answer["iss"] == f"{local.url}/{protocol}"  # RFC 9207

    # 2. Code for tokens.
    tokens = sdk.get_access_token_by_code(answer["code"], verifier)
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 3600
    assert tokens["scope"] == SCOPES[protocol]
    assert tokens["access_token"] and tokens["refresh_token"]
    if protocol == "oidc":
        keys = httpx.get(f"{local.url}/oidc/.well-known/jwks.json").json()
        claims = verify_id_token(tokens["id_token"], keys, client_id, f"{local.url}/oidc")
        assert claims["sub"] == "alice"
        assert claims["nonce"] == nonce
        assert claims["at_hash"] == at_hash(tokens["access_token"])
        assert claims["email"] == "alice@example.com"
        # The SDK's own offline check (fetches the same JWKS, checks aud and RS256).
        assert sdk.introspect_token_offline(tokens["id_token"])["sub"] == "alice"
    else:
        assert "id_token" not in tokens  # OAuth 2.0: no ID token

    # 3. The user's profile, as the scopes allow.
    profile = sdk.get_user_info_by_access_token(tokens["access_token"])
    assert profile["sub"] == "alice"
    assert profile["name"] == "Alice Liddell"
    assert profile["preferred_username"] == "alice"
    assert profile["email"] == "alice@example.com"
    assert profile["email_verified"] is True
    assert profile["picture"] == "https://example.com/alice.png"
    assert profile["updated_at"] == 1_700_000_000
    if protocol == "oidc":
        assert "phone_number" not in profile  # no phone scope asked
    else:
        assert profile["phone_number"] == "+15550101"  # GenAuth's OAuth "user" scope

    # 4. Introspection with the client's own auth method.
    info = sdk.introspect_token(tokens["access_token"])
    assert info["active"] is True
    assert info["sub"] == "alice"
    assert info["client_id"] == client_id
    assert info["scope"] == SCOPES[protocol]
    assert info["exp"] - info["iat"] == 3600
    assert info["token_type"] == "Bearer"

    # 5. An API behind GenAuthGuard takes the SDK's access token.
    response = call_api(local, protocol, tokens["access_token"])
    assert response.status_code == 200, response.text
    assert response.json()["sub"] == "alice"
    assert response.json()["client"] == client_id

    # 6. Refresh: a new pair, and the old refresh token stops working.
    fresh = sdk.get_new_access_token_by_refresh_token(tokens["refresh_token"])
    assert fresh["access_token"] != tokens["access_token"]
    assert fresh["refresh_token"] != tokens["refresh_token"]
    assert ("id_token" in fresh) == (protocol == "oidc")
    assert sdk.introspect_token(tokens["refresh_token"]) == {"active": False}
    assert sdk.introspect_token(fresh["refresh_token"])["token_type"] == "refresh_token"
    assert call_api(local, protocol, fresh["access_token"]).status_code == 200
    # A refresh token is not an access token, even though it introspects active.
    assert call_api(local, protocol, fresh["refresh_token"]).status_code == 401

    # 7. Revocation: the SDK says True (always), the guard now says 401.
    assert sdk.revoke_token(fresh["access_token"]) is True
    assert sdk.introspect_token(fresh["access_token"]) == {"active": False}
    assert call_api(local, protocol, fresh["access_token"]).status_code == 401
    assert call_api(local, protocol, tokens["access_token"]).status_code == 200  # not this one

    # 8. Logout: the browser follows the SDK's URL back to a registered URI; the session
    #    ends, and with it the grant's tokens.
    if protocol == "oidc":
        logout = sdk.build_logout_url(redirect_uri=HOME, id_token=fresh["id_token"])
        assert logout.startswith(f"{local.url}/oidc/session/end?id_token_hint=")
    else:
        logout = sdk.build_logout_url(redirect_uri=HOME)
        assert logout == f"{local.url}/login/profile/logout?redirect_uri={HOME}"
    assert browser.cookies.get("genauth_dev_session")
    out = browser.get(logout)
    assert out.status_code == 303
    assert out.headers["location"] == HOME
    assert not browser.cookies.get("genauth_dev_session")
    assert call_api(local, protocol, tokens["access_token"]).status_code == 401
    after = sdk.get_new_access_token_by_refresh_token(fresh["refresh_token"])
    assert after["error"] == "invalid_grant"
    # Signed out: the next authorize shows the form again.
    again = browser.get(authorize_url(sdk, protocol, state="s", challenge=challenge))
    assert again.status_code == 200 and "<form" in again.text


def verify_id_token(token: str, jwks: dict[str, Any], audience: str, issuer: str) -> dict[str, Any]:
    """Verify an ID token the way a relying party does: key by kid from the JWKS, RS256."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "RS256"
    [key] = [k for k in jwks["keys"] if k["kid"] == header["kid"]]
    assert key["kty"] == "RSA" and key["use"] == "sig" and "d" not in key  # public only
    public = jwt.PyJWK.from_dict(key).key
    claims: dict[str, Any] = jwt.decode(
        token, public, algorithms=["RS256"], audience=audience, issuer=issuer
    )
    return claims


def at_hash(token: str) -> str:
    digest = hashlib.sha256(token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


# ---------------------------------------------------------------- codes and PKCE


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_code_works_once_and_its_reuse_revokes_what_it_gave(
    local: Local, browser: httpx.Client, protocol: str
) -> None:
    sdk = sdk_for(local, protocol, "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    code = code_for(browser, sdk, protocol, challenge)
    first = sdk.get_access_token_by_code(code, verifier)
    assert sdk.introspect_token(first["access_token"])["active"] is True
    second = sdk.get_access_token_by_code(code, verifier)
    assert second["error"] == "invalid_grant"
    assert "access_token" not in second
    # RFC 6749 4.1.2: the replay revokes the tokens the code already gave.
    assert sdk.introspect_token(first["access_token"]) == {"active": False}
    assert call_api(local, protocol, first["access_token"]).status_code == 401


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pkce_verifier_must_match(local: Local, browser: httpx.Client, protocol: str) -> None:
    sdk = sdk_for(local, protocol, "none")
    verifier, challenge = pkce_pair(sdk)
    code = code_for(browser, sdk, protocol, challenge)
    wrong = sdk.get_access_token_by_code(code, sdk.generate_code_challenge())
    assert wrong["error"] == "invalid_grant"
    missing = sdk.get_access_token_by_code(code)
    assert missing["error"] == "invalid_grant"
    right = sdk.get_access_token_by_code(code, verifier)  # the code survived the attempts
    assert call_api(local, protocol, right["access_token"]).json()["sub"] == "alice"


def test_plain_pkce_and_a_raw_http_token_error(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk, "plain")
    assert verifier == challenge
    state = "st"
    url = authorize_url(sdk, "oidc", state=state, challenge=challenge, method="plain")
    code = callback(sign_in(browser, url))["code"]
    # What the SDK cannot show: the status and headers of an RFC 6749 5.2 error.
    bad = httpx.post(
        f"{local.url}/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier + "x",
            "client_id": "web-post",
            "client_secret": SECRETS["client_secret_post"],
        },
    )
    assert bad.status_code == 400
    assert bad.headers["cache-control"] == "no-store"
    assert bad.json()["error"] == "invalid_grant"
    assert sdk.get_access_token_by_code(code, verifier)["scope"] == SCOPES["oidc"]


def test_a_public_client_must_use_pkce(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oauth", "none")
    # The SDK's OAuth authorize URL has no PKCE; the server refuses it with state.
    url = sdk.build_authorize_url(scope="user", state="xyz")
    answer = callback(browser.get(url).headers["location"])
    assert answer["error"] == "invalid_request"
    assert answer["state"] == "xyz"
    assert "code" not in answer


def test_a_code_expires(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_basic")
    verifier, challenge = pkce_pair(sdk)
    code = code_for(browser, sdk, "oidc", challenge)
    local.server.clock_offset = local.server.code_lifetime + 1
    try:
        assert sdk.get_access_token_by_code(code, verifier)["error"] == "invalid_grant"
    finally:
        local.server.clock_offset = 0


def test_a_code_belongs_to_its_client_and_redirect_uri(local: Local, browser: httpx.Client) -> None:
    post = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(post)
    code = code_for(browser, post, "oidc", challenge)
    basic = sdk_for(local, "oidc", "client_secret_basic")
    assert basic.get_access_token_by_code(code, verifier)["error"] == "invalid_grant"
    elsewhere = sdk_for(local, "oidc", "client_secret_post", redirect_uri=HOME)
    assert elsewhere.get_access_token_by_code(code, verifier)["error"] == "invalid_grant"
    oauth = sdk_for(local, "oauth", "client_secret_post")  # issued under /oidc
    assert oauth.get_access_token_by_code(code, verifier)["error"] == "invalid_grant"
    assert "access_token" in post.get_access_token_by_code(code, verifier)


# ---------------------------------------------------------------- redirect URIs


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "https://evil.example/callback",
        CALLBACK + "/",  # exact match: no trailing slash added
        CALLBACK + "?next=/admin",  # nor a query
        "http://127.0.0.1:8766/callback",  # nor another port
    ],
)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_unregistered_redirect_uri_gets_a_page_never_a_redirect(
    local: Local, browser: httpx.Client, protocol: str, redirect_uri: str
) -> None:
    sdk = sdk_for(local, protocol, "client_secret_post")
    url = sdk.build_authorize_url(redirect_uri=redirect_uri, scope=SCOPES[protocol])
    page = browser.get(url)
    assert page.status_code == 400
    assert "location" not in page.headers
    assert "not registered" in page.text
    assert not browser.cookies


def test_unknown_client_gets_a_page(browser: httpx.Client) -> None:
    query = urlencode({"client_id": "nobody", "redirect_uri": CALLBACK, "response_type": "code"})
    page = browser.get(f"/oidc/auth?{query}")
    assert page.status_code == 400
    assert "location" not in page.headers


def test_deny_goes_back_with_access_denied(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    _, challenge = pkce_pair(sdk)
    url = authorize_url(sdk, "oidc", state="no-thanks", challenge=challenge)
    answer = callback(sign_in(browser, url, action="deny"))
    assert answer["error"] == "access_denied"
    assert answer["state"] == "no-thanks"


# ---------------------------------------------------------------- refresh tokens


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_rotated_refresh_token_is_refused_and_revokes_its_grant(
    local: Local, browser: httpx.Client, protocol: str
) -> None:
    sdk = sdk_for(local, protocol, "client_secret_basic")
    verifier, challenge = pkce_pair(sdk)
    tokens = sdk.get_access_token_by_code(code_for(browser, sdk, protocol, challenge), verifier)
    fresh = sdk.get_new_access_token_by_refresh_token(tokens["refresh_token"])
    assert call_api(local, protocol, fresh["access_token"]).status_code == 200
    replay = sdk.get_new_access_token_by_refresh_token(tokens["refresh_token"])
    assert replay["error"] == "invalid_grant"
    # Someone else held the old one (RFC 9700 4.14.2): the whole grant goes.
    assert sdk.get_new_access_token_by_refresh_token(fresh["refresh_token"])["error"] == (
        "invalid_grant"
    )
    assert call_api(local, protocol, fresh["access_token"]).status_code == 401


def test_refresh_can_narrow_the_scope_but_not_widen_it(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    tokens = sdk.get_access_token_by_code(code_for(browser, sdk, "oidc", challenge), verifier)
    auth = {"client_id": "web-post", "client_secret": SECRETS["client_secret_post"]}
    form = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], **auth}
    wider = httpx.post(f"{local.url}/oidc/token", data={**form, "scope": "openid admin"})
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"
    narrow = httpx.post(f"{local.url}/oidc/token", data={**form, "scope": "openid email"})
    assert narrow.status_code == 200
    body = narrow.json()
    assert body["scope"] == "openid email"
    assert sdk.get_user_info_by_access_token(body["access_token"]).keys() == {
        "sub",
        "email",
        "email_verified",
    }


def test_no_offline_access_no_refresh_token(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    url = authorize_url(sdk, "oidc", state="s", challenge=challenge, scope="openid phone")
    tokens = sdk.get_access_token_by_code(callback(sign_in(browser, url))["code"], verifier)
    assert "refresh_token" not in tokens
    profile = sdk.get_user_info_by_access_token(tokens["access_token"])
    assert profile == {"sub": "alice", "phone_number": "+15550101", "phone_number_verified": False}


# ---------------------------------------------------------------- /me


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_me_needs_a_valid_bearer_token(local: Local, protocol: str, method: str) -> None:
    url = f"{local.url}/{protocol}/me"
    bare = httpx.request(method, url)
    assert bare.status_code == 401
    assert bare.headers["www-authenticate"] == 'Bearer realm="genauth-dev"'
    other = httpx.request(method, url, headers={"Authorization": "Basic YTpi"})
    assert other.status_code == 401
    unknown = httpx.request(method, url, headers={"Authorization": "Bearer never-issued"})
    assert unknown.status_code == 401
    assert 'error="invalid_token"' in unknown.headers["www-authenticate"]
    assert unknown.json()["error"] == "invalid_token"
    own = local.server.mint(None, "orders:read")  # a client's own token: no user
    assert httpx.request(method, url, headers={"Authorization": f"Bearer {own}"}).status_code == 401
    token = local.server.mint("alice", "openid email")
    good = httpx.request(method, url, headers={"Authorization": f"Bearer {token}"})
    assert good.json() == {"sub": "alice", "email": "alice@example.com", "email_verified": True}


def test_the_sdk_gets_me_errors_as_json(local: Local) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    assert sdk.get_user_info_by_access_token("never-issued")["error"] == "invalid_token"


# ---------------------------------------------------------------- sign-in without the form


def test_auto_approve_signs_in_as_login_hint_or_the_first_user(
    local: Local, browser: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local.server, "auto_approve", True)
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    for hint, expected in ((None, "alice"), ("bob", "bob")):
        extra = {"login_hint": hint} if hint else {}
        with httpx.Client() as fresh_browser:  # no session cookie
            url = authorize_url(sdk, "oidc", state="s", challenge=challenge, **extra)
            answer = callback(fresh_browser.get(url).headers["location"])
        tokens = sdk.get_access_token_by_code(answer["code"], verifier)
        assert sdk.get_user_info_by_access_token(tokens["access_token"])["sub"] == expected
    unknown = browser.get(
        authorize_url(sdk, "oidc", state="s", challenge=challenge, login_hint="mallory")
    )
    assert unknown.status_code == 303
    assert callback(unknown.headers["location"])["error"] == "invalid_request"


def test_a_session_signs_in_again_without_the_form(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    sign_in(browser, authorize_url(sdk, "oidc", state="1", challenge=challenge), user="bob")
    again = browser.get(authorize_url(sdk, "oidc", state="2", challenge=challenge))
    assert again.status_code == 303  # single sign-on: the session cookie
    tokens = sdk.get_access_token_by_code(callback(again.headers["location"])["code"], verifier)
    assert sdk.introspect_token(tokens["access_token"])["sub"] == "bob"
    # The SDK adds prompt=consent itself when offline_access is asked for: ask without it.
    once = {"challenge": challenge, "scope": "openid profile"}
    forced = browser.get(authorize_url(sdk, "oidc", state="3", prompt="login", **once))
    assert forced.status_code == 200 and "<form" in forced.text
    with httpx.Client() as stranger:
        url = authorize_url(sdk, "oidc", state="4", prompt="none", **once)
        answer = callback(stranger.get(url).headers["location"])
    assert answer == {"error": "login_required", "error_description": answer["error_description"],
                      "state": "4", "iss": f"{local.url}/oidc"}  # fmt: skip


def test_the_login_page_escapes_what_it_shows(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    _, challenge = pkce_pair(sdk)
    page = browser.get(authorize_url(sdk, "oidc", state="s", challenge=challenge))
    assert "Bob &lt;b&gt;Builder&lt;/b&gt;" in page.text
    assert "<b>Builder" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    # A form can be used once.
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    data = {**fields, "user": "alice", "action": "approve"}
    assert browser.post("/dev/login", data=data).status_code == 303
    assert browser.post("/dev/login", data=data).status_code == 400


# ---------------------------------------------------------------- logout


def test_logout_redirects_only_to_registered_uris(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    tokens = sdk.get_access_token_by_code(code_for(browser, sdk, "oidc", challenge), verifier)
    evil = "https://evil.example/"
    for url in (
        sdk.build_logout_url(redirect_uri=evil, id_token=tokens["id_token"]),
        sdk.build_logout_url(redirect_uri=CALLBACK, id_token=tokens["id_token"]),  # not post-logout
        f"{local.url}/oidc/session/end?post_logout_redirect_uri={HOME}",  # whose? no hint
        f"{local.url}/oidc/session/end?id_token_hint=not.a.jwt&post_logout_redirect_uri={HOME}",
        f"{local.url}/login/profile/logout?redirect_uri={evil}",
    ):
        page = browser.get(url)
        assert page.status_code == 400, url
        assert "location" not in page.headers
    # None of those ended anything.
    assert sdk.introspect_token(tokens["access_token"])["active"] is True
    assert browser.cookies.get("genauth_dev_session")
    # A forged hint: signed by another key.
    forged = jwt.encode(
        {"iss": f"{local.url}/oidc", "sub": "alice", "aud": "web-post"},
        "x" * 32,
        algorithm="HS256",
    )
    assert browser.get(sdk.build_logout_url(redirect_uri=HOME, id_token=forged)).status_code == 400
    # With state, and without a cookie: the hint's session ends.
    url = sdk.build_logout_url(redirect_uri=HOME, id_token=tokens["id_token"]) + "&state=bye"
    with httpx.Client() as elsewhere:
        out = elsewhere.get(url)
    assert out.status_code == 303
    assert out.headers["location"] == HOME + "?state=bye"
    assert sdk.introspect_token(tokens["access_token"]) == {"active": False}


def test_logout_without_a_redirect_shows_a_page(local: Local, browser: httpx.Client) -> None:
    sdk = sdk_for(local, "oauth", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    tokens = sdk.get_access_token_by_code(code_for(browser, sdk, "oauth", challenge), verifier)
    page = browser.get(sdk.build_logout_url())
    assert page.status_code == 200
    assert "signed out" in page.text
    assert not browser.cookies.get("genauth_dev_session")
    assert sdk.introspect_token(tokens["access_token"]) == {"active": False}


# ---------------------------------------------------------------- discovery and keys


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_discovery_lists_everything_served(local: Local, protocol: str) -> None:
    doc = httpx.get(f"{local.url}/{protocol}/.well-known/openid-configuration").json()
    base = f"{local.url}/{protocol}"
    assert doc["issuer"] == base
    assert doc["authorization_endpoint"] == f"{base}/auth"
    assert doc["token_endpoint"] == f"{base}/token"
    assert doc["userinfo_endpoint"] == f"{base}/me"
    assert doc["jwks_uri"] == f"{local.url}/oidc/.well-known/jwks.json"
    assert doc["introspection_endpoint"] == f"{base}/token/introspection"
    assert doc["revocation_endpoint"] == f"{base}/token/revocation"
    end_session = "/oidc/session/end" if protocol == "oidc" else "/login/profile/logout"
    assert doc["end_session_endpoint"] == local.url + end_session
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert doc["response_types_supported"] == ["code"]
    assert doc["code_challenge_methods_supported"] == ["S256", "plain"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"openid", "profile", "email", "phone", "offline_access"} <= set(doc["scopes_supported"])
    assert doc["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]
    # Every endpoint it names answers (none is a 404 or a 405).
    assert httpx.get(doc["authorization_endpoint"]).status_code == 400
    assert httpx.get(doc["userinfo_endpoint"]).status_code == 401
    assert httpx.get(doc["end_session_endpoint"]).status_code == 200
    assert httpx.get(doc["jwks_uri"]).status_code == 200
    for name in ("token_endpoint", "introspection_endpoint", "revocation_endpoint"):
        assert httpx.post(doc[name], data={"token": "x"}).status_code == 401


def test_jwks_names_the_key_that_signs(local: Local, browser: httpx.Client) -> None:
    keys = httpx.get(f"{local.url}/oidc/.well-known/jwks.json").json()["keys"]
    assert len(keys) == 1
    [key] = keys
    assert key["alg"] == "RS256" and key["kty"] == "RSA" and key["kid"]
    assert set(key) == {"kty", "n", "e", "kid", "use", "alg"}


# ---------------------------------------------------------------- the library without PyJWT


def test_the_library_imports_and_serves_without_pyjwt() -> None:
    script = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "jwt" or name.startswith(("jwt.", "cryptography")):
            raise ImportError("blocked: " + name)
sys.meta_path.insert(0, Block())
import genauth_guard, genauth_guard.wsgi
from genauth_guard import GenAuthGuard, Introspector
from genauth_guard.dev.server import DevAuthServer
server = DevAuthServer()
token = server.mint("alice", "orders:read")
assert server.answer(token)["active"] is True
assert "jwt" not in sys.modules
try:
    server.signing_key
except RuntimeError as exc:
    print("RuntimeError:", exc)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "pip install 'genauth-guard[dev-server]'" in result.stdout


# ---------------------------------------------------------------- the guard reads /me


@pytest.mark.anyio
@pytest.mark.parametrize("how", ["from_genauth", "from_discovery"])
async def test_the_introspector_reads_the_users_profile_from_me(
    local: Local, browser: httpx.Client, how: str
) -> None:
    """/me and discovery's userinfo_endpoint are what the library's profile lookup uses."""
    sdk = sdk_for(local, "oidc", "client_secret_post")
    verifier, challenge = pkce_pair(sdk)
    url = authorize_url(sdk, "oidc", state="s", challenge=challenge, scope="openid email")
    tokens = sdk.get_access_token_by_code(callback(sign_in(browser, url))["code"], verifier)
    secret = SECRETS["client_secret_post"]
    if how == "from_genauth":
        introspector = Introspector.from_genauth(
            app_id="web-post", secret=secret, app_host=local.url, userinfo=True
        )
    else:
        introspector = Introspector.from_discovery(
            f"{local.url}/oidc", "web-post", secret, auth_method="client_secret_post", userinfo=True
        )
    async with introspector:
        info = await introspector.introspect(tokens["access_token"])
    assert info.sub == "alice"
    assert info.userinfo == {"sub": "alice", "email": "alice@example.com", "email_verified": True}
