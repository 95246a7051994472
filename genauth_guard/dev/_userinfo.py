"""The dev server's users as ``/me`` (OpenID Connect userinfo) shows them.

A user's claims come from its ``DevUser``; an access token shows only those
its scopes allow. No HTTP here (``_http`` serves ``/{p}/me``).
"""

from __future__ import annotations

from typing import Any

from ._model import DevUser, OAuthError, claims_for_scopes
from ._tokens import REFRESH_TOKEN_TYPE, TokenStore


class UserInfoStore(TokenStore):
    """The users who sign in (set by ``DevStore.__init__``) and their claims."""

    users: dict[str, DevUser]
    started_at: int

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
