"""The dev server's authorization code flow (RFC 6749 4.1) with PKCE, sessions and logout.

A *grant* is one user's approval of one client (one authorization code):
its access and refresh tokens live and die together. Revoking a refresh
token (RFC 7009 2.1), replaying an authorization code (RFC 6749 4.1.2) or a
rotated refresh token (RFC 9700 4.14.2), and logging out of the session
that approved it all revoke the whole grant.

No HTTP here: ``_login`` serves the login form and logout, ``_http`` the
token endpoint. ``_store.DevStore.__init__`` sets the attributes declared below.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Final

from ._authorize import AuthorizationRequest, verify_pkce
from ._model import DevClient, OAuthError, claims_for_scopes, invalid_grant, invalid_request
from ._tokens import REFRESH_TOKEN_TYPE, Grant
from ._userinfo import UserInfoStore

if TYPE_CHECKING:
    from ._jose import SigningKey

OFFLINE_ACCESS: Final = "offline_access"
_PENDING_LIFETIME: Final = 600  # seconds a login form stays valid


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


class CodeFlow(UserInfoStore):
    """Sign-in, codes, refresh-token rotation, ID tokens and logout.

    ``auto_approve`` skips the login form, for tests: ``True`` signs in as
    the request's ``login_hint`` user, else the first user; a ``sub`` signs
    in as that user unless ``login_hint`` names another.
    """

    auto_approve: bool | str
    code_lifetime: int
    refresh_token_lifetime: int
    _codes: dict[str, _Code]
    _sessions: dict[str, _Session]
    _pending: dict[str, tuple[AuthorizationRequest, float]]

    @cached_property
    def signing_key(self) -> SigningKey:
        """The RS256 key of ID tokens (made on first use; needs PyJWT and cryptography)."""
        from ._jose import SigningKey

        return SigningKey()

    # ------------------------------------------------------------ sessions

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
            self._grants[grant_id] = Grant(
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
        self, grant: Grant, scopes: tuple[str, ...], access_token: str, nonce: str | None
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

    # ------------------------------------------------------------ logout

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
