"""The authorization request's rules (RFC 6749 4.1, RFC 7636, OIDC Core 3.1.2), without I/O.

``check_target`` decides whether an error may be sent back to the client
at all: until the client and its redirect URI are known to be registered,
an error is a page, never a redirect (RFC 6749 4.1.2.1), or the server would
be an open redirector. ``check_request`` checks the rest; its errors go back
to the redirect URI with ``state``. ``verify_pkce`` is the token endpoint's
half of RFC 7636.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlencode

from ._model import DevClient, OAuthError, invalid_grant, invalid_request, is_scope_token

# RFC 7636 4.1 / 4.2: 43 to 128 unreserved characters.
_PKCE_VALUE: Final = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
PKCE_METHODS: Final = ("S256", "plain")
RESPONSE_TYPES: Final = ("code",)
RESPONSE_MODES: Final = ("query",)
PROMPTS: Final = ("none", "login", "consent", "select_account")


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked authorization request, waiting for a user to approve it."""

    protocol: str
    client_id: str
    redirect_uri: str
    redirect_uri_sent: bool  # RFC 6749 4.1.3: then the token request must repeat it
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    login_hint: str | None
    prompt: tuple[str, ...]


def check_target(
    clients: Mapping[str, DevClient], params: Mapping[str, str]
) -> tuple[DevClient, str, bool]:
    """The registered client and redirect URI, or an ``OAuthError`` to show as a page."""
    client_id = params.get("client_id", "")
    client = clients.get(client_id)
    if client is None:
        raise invalid_request(
            "client_id is missing or names no registered client"
            if not client_id
            else f"no client {client_id!r} is registered at this dev server"
        )
    if not client.redirect_uris:
        raise invalid_request(
            f"client {client_id!r} has no redirect_uris registered; add them to its DevClient "
            "or its [[clients]] entry in the config file"
        )
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        # RFC 6749 3.1.2.3: optional only when exactly one is registered.
        if len(client.redirect_uris) != 1:
            raise invalid_request("redirect_uri is required: the client registered several")
        return client, client.redirect_uris[0], False
    if redirect_uri not in client.redirect_uris:
        raise invalid_request(
            f"redirect_uri {redirect_uri!r} is not registered for client {client_id!r} "
            "(matched exactly); registered: " + ", ".join(client.redirect_uris)
        )
    return client, redirect_uri, True


def check_request(
    protocol: str,
    client: DevClient,
    redirect_uri: str,
    redirect_uri_sent: bool,
    params: Mapping[str, str],
) -> AuthorizationRequest:
    """The whole request checked; errors here are redirected back with ``state``."""
    response_type = params.get("response_type")
    if not response_type:
        raise invalid_request("response_type is missing")
    if response_type not in RESPONSE_TYPES:
        raise OAuthError(
            400, "unsupported_response_type", "only response_type=code is served (code flow)"
        )
    response_mode = params.get("response_mode")
    if response_mode is not None and response_mode not in RESPONSE_MODES:
        raise invalid_request("only response_mode=query is served")
    scopes = tuple(dict.fromkeys(s for s in params.get("scope", "").split(" ") if s))
    if not all(is_scope_token(s) for s in scopes):
        raise OAuthError(400, "invalid_scope", "scope must be space-separated scope tokens")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise invalid_request("code_challenge_method was sent without code_challenge")
        if client.auth_method == "none":
            raise invalid_request("a public client must use PKCE: send code_challenge (RFC 7636)")
    else:
        method = method or "plain"  # RFC 7636 4.3
        if method not in PKCE_METHODS:
            raise invalid_request("code_challenge_method must be S256 or plain")
        if not _PKCE_VALUE.fullmatch(challenge):
            raise invalid_request("code_challenge must be 43 to 128 unreserved characters")
    prompt = tuple(params.get("prompt", "").split())
    if any(p not in PROMPTS for p in prompt) or ("none" in prompt and len(prompt) > 1):
        raise invalid_request("prompt must be none, or any of login, consent, select_account")
    return AuthorizationRequest(
        protocol=protocol,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        redirect_uri_sent=redirect_uri_sent,
        scopes=scopes,
        state=params.get("state"),
        nonce=params.get("nonce"),
        code_challenge=challenge,
        code_challenge_method=method if challenge is not None else None,
        login_hint=params.get("login_hint") or None,
        prompt=prompt,
    )


def redirect_with(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query (keeping the query it has, RFC 6749 3.1.2)."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    if not query:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


def verify_pkce(request: AuthorizationRequest, verifier: str | None) -> None:
    """RFC 7636 4.6: the token request's ``code_verifier`` against the stored challenge."""
    if request.code_challenge is None:
        if verifier is not None:
            raise invalid_grant("code_verifier was sent, but the authorization had no challenge")
        return
    if verifier is None:
        raise invalid_grant("code_verifier is required: the authorization used PKCE")
    if not _PKCE_VALUE.fullmatch(verifier):
        raise invalid_request("code_verifier must be 43 to 128 unreserved characters")
    if request.code_challenge_method == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        computed = verifier
    if not secrets.compare_digest(computed, request.code_challenge):
        raise invalid_grant("code_verifier does not match the code_challenge")
