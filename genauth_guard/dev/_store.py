"""The dev server's state and rules: clients, users, grants, tokens, and the answers about them.

No HTTP here: ``_http`` and ``_login`` serve these operations at GenAuth's
paths, and ``server.DevAuthServer`` (this class plus its Starlette app) is
what users import. Every operation takes the one lock; the server runs in a
thread while tests call it from another.

A *grant* is one user's approval of one client (one authorization code):
its access and refresh tokens live and die together. Revoking a refresh
token (RFC 7009 2.1), replaying an authorization code (RFC 6749 4.1.2) or a
rotated refresh token (RFC 9700 4.14.2), and logging out of the session
that approved it all revoke the whole grant.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from .._client_auth import check_auth_method
from ._authorize import PKCE_METHODS, AuthorizationRequest, verify_pkce
from ._model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_SUB,
    DEFAULT_USER,
    ENDPOINT_PATHS,
    PROTOCOLS,
    SCOPE_ALIASES,
    SCOPE_CLAIMS,
    DevClient,
    DevUser,
    OAuthError,
    claims_for_scopes,
    invalid_grant,
    invalid_request,
    is_scope_token,
)

if TYPE_CHECKING:
    from ._jose import SigningKey

REFRESH_TOKEN_TYPE: Final = "refresh_token"
OFFLINE_ACCESS: Final = "offline_access"
_PENDING_LIFETIME: Final = 600  # seconds a login form stays valid


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
    token_type: str = "Bearer"
    grant: str | None = None  # the grant it came from (code flow), if any
    rotated: bool = False  # a refresh token already exchanged


@dataclass
class _Grant:
    client_id: str
    sub: str
    scopes: tuple[str, ...]
    protocol: str
    auth_time: int
    session: str | None
    revoked: bool = False


@dataclass
class _Code:
    request: AuthorizationRequest
    sub: str
    session: str
    auth_time: int
    exp: float
    grant: str | None = None  # set when redeemed: a second use revokes it


@dataclass
class _Session:
    sub: str
    auth_time: int
    grants: set[str] = field(default_factory=set)


class DevStore:
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
        self.clients: dict[str, DevClient] = {}
        for client in clients:
            check_auth_method(client.auth_method)
            if client.auth_method != "none" and not client.client_secret:
                raise ValueError(f"client {client.client_id!r} needs a client_secret")
            if client.client_id in self.clients:
                raise ValueError(f"client {client.client_id!r} is registered twice")
            self.clients[client.client_id] = client
        if not self.clients:
            raise ValueError("DevAuthServer needs at least one client")
        self.users: dict[str, DevUser] = {}
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
        self._tokens: dict[str, _Token] = {}
        self._grants: dict[str, _Grant] = {}
        self._codes: dict[str, _Code] = {}
        self._sessions: dict[str, _Session] = {}
        self._pending: dict[str, tuple[AuthorizationRequest, float]] = {}
        self._lock = threading.RLock()  # _issue mints while holding it
        self.introspection_calls = 0
        self.introspected: Counter[str] = Counter()

    @property
    def client(self) -> DevClient:
        """The first registered client (the default one)."""
        return next(iter(self.clients.values()))

    def now(self) -> float:
        """The server's clock (``time.time()`` plus ``clock_offset``)."""
        return time.time() + self.clock_offset

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

    @cached_property
    def signing_key(self) -> SigningKey:
        """The RS256 key of ID tokens (made on first use; needs PyJWT and cryptography)."""
        from ._jose import SigningKey

        return SigningKey()

    # ------------------------------------------------------------ tokens

    def mint(
        self,
        sub: str | None = DEFAULT_SUB,
        scopes: Iterable[str] | str = (),
        *,
        expires_in: float | None = None,
        client_id: str | None = None,
        not_before: float | None = None,
        audience: Iterable[str] | str = (),
        username: str | None = None,
    ) -> str:
        """Issue an access token for ``sub`` with ``scopes``; returns the opaque token.

        ``expires_in`` defaults to ``token_lifetime`` (0 or less: already
        expired); ``not_before`` is a NumericDate; ``client_id`` (the claim;
        any string) defaults to the first client.
        """
        scopes = tuple(scopes.split() if isinstance(scopes, str) else scopes)
        bad = [s for s in scopes if not is_scope_token(s)]
        if bad:
            raise ValueError(f"scopes must be RFC 6749 scope tokens, got {bad!r}")
        client_id = client_id or self.client.client_id
        if isinstance(audience, str):
            audience = (audience,)
        now = self.now()
        lifetime = self.token_lifetime if expires_in is None else expires_in
        token = secrets.token_urlsafe(32)
        while token.startswith("-"):  # would read as an option on a command line
            token = secrets.token_urlsafe(32)
        record = _Token(
            sub=sub,
            scopes=scopes,
            client_id=client_id,
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
        """Revoke ``token`` whoever it was issued to (unknown tokens are ignored).

        A refresh token takes its whole grant with it, as at the revocation endpoint.
        """
        with self._lock:
            record = self._tokens.get(token)
            if record is not None:
                self._revoke_locked(record)

    def _revoke_locked(self, record: _Token) -> None:
        record.revoked = True
        if record.token_type == REFRESH_TOKEN_TYPE and record.grant is not None:
            self._grants[record.grant].revoked = True

    def _is_active_locked(self, record: _Token | None, now: float) -> bool:
        return not (
            record is None
            or record.revoked
            or record.rotated
            or (record.grant is not None and self._grants[record.grant].revoked)
            or now >= record.exp
            or (record.nbf is not None and now < record.nbf)
        )

    def answer(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for ``token``, shaped like GenAuth's.

        Active only if known, not revoked, and ``nbf <= now < exp`` on the
        server's clock (RFC 7662 2.2: "within its given time window"). A
        refresh token answers with ``token_type: refresh_token``, so a
        resource server can tell it from an access token.
        """
        now = self.now()
        with self._lock:
            record = self._tokens.get(token)
            if record is None or not self._is_active_locked(record, now):
                return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "client_id": record.client_id,
            "exp": record.exp,
            "iat": record.iat,
            "iss": self.issuer,
            "jti": record.jti,
            "scope": " ".join(record.scopes),
            "token_type": record.token_type,
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

    def revoke_as(self, client_id: str, token: str) -> bool:
        """RFC 7009 revocation asked by ``client_id``.

        False (nothing revoked) if the token was issued to another client;
        True otherwise, unknown tokens included. A refresh token takes the
        access tokens of its grant with it (RFC 7009 2.1).
        """
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                return True
            if record.client_id != client_id:
                return False
            self._revoke_locked(record)
            return True

    def introspect(self, token: str) -> dict[str, Any]:
        """``answer(token)``, counted in ``introspection_calls`` (the HTTP endpoint's view)."""
        answer = self.answer(token)
        with self._lock:
            self.introspection_calls += 1
            self.introspected["active" if answer["active"] else "inactive"] += 1
        return answer

    # ------------------------------------------------------------ users and sessions

    def user_claims(self, sub: str) -> dict[str, Any]:
        """Every standard claim of user ``sub`` (just ``sub`` for a sub no user has)."""
        user = self.users.get(sub)
        return {"sub": sub} if user is None else user.claims(self.started_at)

    def userinfo(self, token: str) -> dict[str, Any]:
        """What ``/me`` answers for an access token: its user's claims, as its scopes allow.

        Raises ``OAuthError`` 401 ``invalid_token`` for an inactive token, a
        refresh token, or a client's own token (no user).
        """
        answer = self.answer(token)
        if not answer["active"] or answer["token_type"] == REFRESH_TOKEN_TYPE:
            raise OAuthError(401, "invalid_token", "the access token is not active")
        sub = answer.get("sub")
        if not sub:
            raise OAuthError(401, "invalid_token", "the token was issued to a client, not a user")
        claims = self.user_claims(sub)
        if "preferred_username" not in claims and "username" in answer:
            claims["preferred_username"] = answer["username"]
        return claims_for_scopes(claims, answer["scope"].split())

    def session_user(self, session_id: str | None) -> str | None:
        """The user signed in with session cookie ``session_id``, if it is live."""
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
        return session.sub if session is not None else None

    def end_sessions(self, session_ids: Iterable[str | None]) -> int:
        """Log out: end each session and revoke every grant it approved; returns how many ended."""
        ended = 0
        with self._lock:
            for session_id in session_ids:
                session = self._sessions.pop(session_id or "", None)
                if session is None:
                    continue
                ended += 1
                for grant in session.grants:
                    self._grants[grant].revoked = True
        return ended

    # ------------------------------------------------------------ authorization code flow

    def auto_approve_user(self, login_hint: str | None) -> str | None:
        """Whom ``auto_approve`` signs in for a request with ``login_hint`` (None: show the form).

        Raises ``OAuthError`` when the hint names no user: a test that meant
        to sign in as someone should hear about the typo, not see a form.
        """
        if self.auto_approve is False:
            return None
        if login_hint is not None:
            if login_hint not in self.users:
                raise invalid_request(
                    f"login_hint {login_hint!r} names no dev user; users: {', '.join(self.users)}"
                )
            return login_hint
        if self.auto_approve is True:
            return next(iter(self.users))
        return self.auto_approve

    def hold(self, request: AuthorizationRequest) -> str:
        """Keep ``request`` while the login form is shown; returns the form's request id."""
        request_id = secrets.token_urlsafe(24)
        now = self.now()
        with self._lock:
            for stale in [k for k, (_, exp) in self._pending.items() if exp <= now]:
                del self._pending[stale]
            self._pending[request_id] = (request, now + _PENDING_LIFETIME)
        return request_id

    def take(self, request_id: str) -> AuthorizationRequest:
        """The held request for a submitted form, once; ``OAuthError`` if unknown or stale."""
        with self._lock:
            held = self._pending.pop(request_id, None)
        if held is None or held[1] <= self.now():
            raise invalid_request("this login form has expired or was already used; start again")
        return held[0]

    def approve(
        self, request: AuthorizationRequest, sub: str, session_id: str | None
    ) -> tuple[str, str]:
        """User ``sub`` approves ``request``: returns (authorization code, session id).

        Reuses ``session_id`` if it is ``sub``'s live session, else starts one.
        """
        if sub not in self.users:
            raise invalid_request(f"no dev user {sub!r}")
        now = self.now()
        code = secrets.token_urlsafe(32)
        with self._lock:
            session = self._sessions.get(session_id or "")
            if session is None or session.sub != sub:
                session_id = secrets.token_urlsafe(24)
                session = self._sessions[session_id] = _Session(sub, int(now))
            assert session_id is not None
            for stale in [k for k, c in self._codes.items() if c.exp <= now and c.grant is None]:
                del self._codes[stale]
            self._codes[code] = _Code(
                request, sub, session_id, session.auth_time, now + self.code_lifetime
            )
        return code, session_id

    def redeem_code(
        self,
        client: DevClient,
        protocol: str,
        code: str | None,
        redirect_uri: str | None,
        code_verifier: str | None,
    ) -> dict[str, Any]:
        """The token response for an authorization code (RFC 6749 4.1.3, RFC 7636 4.6).

        One use per code: a second use fails and revokes what the first issued.
        """
        if not code:
            raise invalid_request("the code parameter is missing")
        with self._lock:
            record = self._codes.get(code)
            if record is not None and record.grant is not None:
                self._grants[record.grant].revoked = True  # RFC 6749 4.1.2: replayed
                raise invalid_grant("the authorization code was already used")
            if record is None or record.exp <= self.now():
                raise invalid_grant("the authorization code is unknown or expired")
            request = record.request
            if request.client_id != client.client_id:
                raise invalid_grant("the authorization code was issued to another client")
            if request.protocol != protocol:
                raise invalid_grant(f"the authorization code was issued under /{request.protocol}")
            if (request.redirect_uri_sent or redirect_uri is not None) and (
                redirect_uri != request.redirect_uri
            ):
                raise invalid_grant("redirect_uri differs from the authorization request's")
            verify_pkce(request, code_verifier)
            grant_id = secrets.token_hex(12)
            self._grants[grant_id] = _Grant(
                client.client_id, record.sub, request.scopes, protocol, record.auth_time,
                record.session,
            )  # fmt: skip
            record.grant = grant_id
            session = self._sessions.get(record.session)
            if session is not None:
                session.grants.add(grant_id)
        return self._issue(grant_id, request.scopes, nonce=request.nonce)

    def refresh(
        self, client: DevClient, protocol: str, refresh_token: str | None, scope: str | None
    ) -> dict[str, Any]:
        """The token response for a refresh token (RFC 6749 6), rotating it.

        The old refresh token stops working; presenting it again revokes the
        whole grant (RFC 9700 4.14.2: one of the two holders is not the client).
        """
        if not refresh_token:
            raise invalid_request("the refresh_token parameter is missing")
        now = self.now()
        with self._lock:
            record = self._tokens.get(refresh_token)
            if record is None or record.token_type != REFRESH_TOKEN_TYPE or record.grant is None:
                raise invalid_grant("the refresh token is unknown")
            grant = self._grants[record.grant]
            if record.rotated:
                grant.revoked = True
                raise invalid_grant("the refresh token was already used; its grant is revoked")
            if not self._is_active_locked(record, now):
                raise invalid_grant("the refresh token is expired or revoked")
            if record.client_id != client.client_id:
                raise invalid_grant("the refresh token was issued to another client")
            if grant.protocol != protocol:
                raise invalid_grant(f"the refresh token was issued under /{grant.protocol}")
            scopes = grant.scopes
            if scope is not None:
                asked = tuple(dict.fromkeys(s for s in scope.split(" ") if s))
                if not set(asked) <= set(grant.scopes):
                    raise OAuthError(400, "invalid_scope", "scope exceeds what was granted")
                scopes = asked
            record.rotated = True
            grant_id = record.grant
        return self._issue(grant_id, scopes)

    def _issue(
        self, grant_id: str, scopes: tuple[str, ...], nonce: str | None = None
    ) -> dict[str, Any]:
        """Access token, refresh token (with ``offline_access``) and ID token (oidc + openid)."""
        grant = self._grants[grant_id]
        user = self.users.get(grant.sub)
        with self._lock:  # no one sees the tokens before they belong to the grant
            access = self.mint(
                grant.sub,
                scopes,
                client_id=grant.client_id,
                username=user.username if user is not None else None,
            )
            self._tokens[access].grant = grant_id
            body: dict[str, Any] = {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "scope": " ".join(scopes),
            }
            if OFFLINE_ACCESS in grant.scopes:
                # Through mint(), so whatever watches issued tokens (a test suite's
                # leak check) sees refresh tokens too; then it becomes one.
                refresh = self.mint(
                    grant.sub,
                    grant.scopes,
                    client_id=grant.client_id,
                    expires_in=self.refresh_token_lifetime,
                )
                self._tokens[refresh].grant = grant_id
                self._tokens[refresh].token_type = REFRESH_TOKEN_TYPE
                body["refresh_token"] = refresh
        if grant.protocol == "oidc" and "openid" in scopes:
            body["id_token"] = self.id_token(grant, scopes, access, nonce)
        return body

    def id_token(
        self, grant: _Grant, scopes: tuple[str, ...], access_token: str, nonce: str | None
    ) -> str:
        """An RS256 ID token (OIDC Core 2) with the claims ``scopes`` allow."""
        from ._jose import token_hash

        now = int(self.now())
        claims: dict[str, Any] = claims_for_scopes(self.user_claims(grant.sub), scopes)
        claims.update(
            iss=f"{self.issuer}/oidc",
            sub=grant.sub,
            aud=grant.client_id,
            exp=now + self.token_lifetime,
            iat=now,
            auth_time=grant.auth_time,
            at_hash=token_hash(access_token),
        )
        if grant.session is not None:
            claims["sid"] = grant.session
        if nonce is not None:
            claims["nonce"] = nonce
        return self.signing_key.sign(claims)

    def logout_target(
        self, id_token_hint: str | None, client_id: str | None, redirect_uri: str | None
    ) -> tuple[str | None, str | None]:
        """Check an RP-initiated logout: returns (session named by the hint, redirect URI).

        The hint must be an ID token this server signed (expired is fine);
        the redirect URI must be registered as a post-logout URI of the
        hint's client (or ``client_id``'s), exactly. Else ``OAuthError``.
        """
        session_id = None
        if id_token_hint:
            claims = self.signing_key.verify_hint(id_token_hint, f"{self.issuer}/oidc")
            if claims is None:
                raise invalid_request("id_token_hint is not an ID token this server issued")
            hinted = claims["aud"]
            hinted = hinted if isinstance(hinted, str) else next(iter(hinted), None)
            if client_id is not None and client_id != hinted:
                raise invalid_request("client_id differs from the id_token_hint's audience")
            client_id = hinted
            session_id = claims.get("sid") if isinstance(claims.get("sid"), str) else None
        if redirect_uri is None:
            return session_id, None
        client = self.clients.get(client_id or "")
        if client is None:
            raise invalid_request(
                "post_logout_redirect_uri needs id_token_hint (or client_id) naming the client"
            )
        if redirect_uri not in client.post_logout_redirect_uris:
            raise invalid_request(
                f"{redirect_uri!r} is not a registered post-logout redirect URI of "
                f"client {client.client_id!r}"
            )
        return session_id, redirect_uri

    def any_post_logout_uri(self, redirect_uri: str) -> bool:
        """Whether some client registered ``redirect_uri`` for after logout (GenAuth's
        ``/login/profile/logout`` names no client)."""
        return any(redirect_uri in c.post_logout_redirect_uris for c in self.clients.values())
