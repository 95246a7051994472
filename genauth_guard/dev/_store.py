"""The dev server's state and rules: clients, users, grants, tokens, and the answers about them.

No HTTP here: ``_http`` and ``_login`` serve these operations at GenAuth's
paths, and ``server.DevAuthServer`` (this class plus its Starlette app) is
what users import. Every operation takes the one lock; the server runs in a
thread while tests call it from another.

``DevStore`` checks its settings, makes the state, and describes itself
(endpoints, discovery); its rules come from the classes it builds on, one
idea each: ``_tokens.TokenStore`` (minting, introspection, revocation),
``_userinfo.UserInfoStore`` (users' claims, ``/me``) and
``_codeflow.CodeFlow`` (the authorization code flow with PKCE, sessions,
refresh-token rotation, ID tokens, logout).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .._client_auth import check_auth_method
from ._authorize import PKCE_METHODS
from ._codeflow import OFFLINE_ACCESS, CodeFlow
from ._model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_USER,
    ENDPOINT_PATHS,
    PROTOCOLS,
    SCOPE_ALIASES,
    SCOPE_CLAIMS,
    DevClient,
    DevUser,
)
from ._tokens import REFRESH_TOKEN_TYPE

__all__ = ["OFFLINE_ACCESS", "REFRESH_TOKEN_TYPE", "DevStore"]


class DevStore(CodeFlow):
    """The in-memory authorization server without its HTTP face (``DevAuthServer`` adds it).

    ``issuer`` is the public base URL the server is reached at (``app_host``
    in GenAuth terms); ``running()`` sets it, it only shows in answers.
    ``introspection_calls`` counts authenticated introspection requests
    (``introspected`` per answer), so tests can check caching and single
    flight from the server's side. ``clock_offset`` (seconds) makes the
    server's clock run ahead (or behind) to test clock skew for real.

    ``users`` sign in at the login form (default: one user, ``user-1``).
    ``auto_approve`` skips the form, for tests: ``True`` signs in as the
    request's ``login_hint`` user, else the first user; a ``sub`` signs in as
    that user unless ``login_hint`` names another.
    """

    def __init__(
        self,
        clients: Iterable[DevClient] | None = None,
        *,
        users: Iterable[DevUser] | None = None,
        token_lifetime: int = 3600,
        issuer: str = "http://127.0.0.1",
        auto_approve: bool | str = False,
        code_lifetime: int = 60,
        refresh_token_lifetime: int = 30 * 86400,
    ) -> None:
        if clients is None:
            clients = [DevClient(DEFAULT_CLIENT_ID, secrets.token_hex(16))]
        self.clients = {}
        for client in clients:
            check_auth_method(client.auth_method)
            if client.auth_method in ("client_secret_jwt", "private_key_jwt"):
                from ._signing import check_client

                check_client(client)
            elif client.auth_method != "none" and not client.client_secret:
                raise ValueError(f"client {client.client_id!r} needs a client_secret")
            if client.client_id in self.clients:
                raise ValueError(f"client {client.client_id!r} is registered twice")
            self.clients[client.client_id] = client
        if not self.clients:
            raise ValueError("DevAuthServer needs at least one client")
        self.users = {}
        for user in [DEFAULT_USER] if users is None else users:
            if user.sub in self.users:
                raise ValueError(f"user {user.sub!r} is registered twice")
            self.users[user.sub] = user
        if auto_approve not in (True, False) and auto_approve not in self.users:
            raise ValueError(
                f"auto_approve={auto_approve!r} must be True, False or a user's sub "
                f"({', '.join(self.users) or 'no users registered'})"
            )
        if auto_approve is not False and not self.users:
            raise ValueError("auto_approve needs a user to sign in as; register users")
        for name, value in (
            ("token_lifetime", token_lifetime),
            ("code_lifetime", code_lifetime),
            ("refresh_token_lifetime", refresh_token_lifetime),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name}={value!r} must be seconds, more than 0")
        self.token_lifetime = token_lifetime
        self.code_lifetime = code_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.auto_approve = auto_approve
        self.issuer = issuer.rstrip("/")
        self.clock_offset = 0.0
        self.started_at = int(time.time())
        self._tokens = {}
        self._grants = {}
        self._codes = {}
        self._sessions = {}
        self._pending = {}
        self._lock = threading.RLock()  # _issue mints while holding it
        self.assertion_ids: dict[str, float] = {}  # spent client assertions (jti: exp)
        self.introspection_calls = 0
        self.introspected = Counter()

    def endpoint(self, name: str = "introspection", protocol: str = "oidc") -> str:
        """The URL of ``token``, ``introspection``, ``revocation``, ``authorization`` or
        ``userinfo``, as GenAuth's SDK builds it."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r} must be one of {', '.join(PROTOCOLS)}")
        if name not in ENDPOINT_PATHS:
            raise ValueError(f"no endpoint {name!r}; use one of {', '.join(ENDPOINT_PATHS)}")
        return f"{self.issuer}/{protocol}/{ENDPOINT_PATHS[name]}"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/oidc/.well-known/jwks.json"

    def end_session_endpoint(self, protocol: str = "oidc") -> str:
        """Where GenAuth's SDK sends the browser to log out (``build_logout_url``)."""
        if protocol == "oidc":
            return f"{self.issuer}/oidc/session/end"
        return f"{self.issuer}/login/profile/logout"

    def metadata(self, protocol: str = "oidc") -> dict[str, Any]:
        """The discovery document (issuer ``{app_host}/{protocol}``, as GenAuth serves it).

        It names only what this server really serves.
        """
        methods = sorted({c.auth_method for c in self.clients.values()})
        scopes = ["openid", *SCOPE_CLAIMS, OFFLINE_ACCESS]
        if protocol == "oauth":
            scopes += list(SCOPE_ALIASES)
        return {
            "issuer": f"{self.issuer}/{protocol}",
            "authorization_endpoint": self.endpoint("authorization", protocol),
            "token_endpoint": self.endpoint("token", protocol),
            "userinfo_endpoint": self.endpoint("userinfo", protocol),
            "jwks_uri": self.jwks_uri,
            "end_session_endpoint": self.end_session_endpoint(protocol),
            "introspection_endpoint": self.endpoint("introspection", protocol),
            "revocation_endpoint": self.endpoint("revocation", protocol),
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "code_challenge_methods_supported": list(PKCE_METHODS),
            "scopes_supported": scopes,
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "auth_time",
                "nonce",
                "at_hash",
                "sid",
                *(claim for claims in SCOPE_CLAIMS.values() for claim in claims),
            ],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
            "authorization_response_iss_parameter_supported": True,
            "claims_parameter_supported": False,
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }
