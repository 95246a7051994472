"""The dev server's tokens: minting, introspection (RFC 7662) and revocation (RFC 7009).

``TokenStore`` holds every issued token and the grants they came from; the
authorization code flow (``_codeflow``) makes the grants. No HTTP here, and
no state of its own making: ``_store.DevStore.__init__`` sets the attributes
declared below. Every operation takes the one lock.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from ._model import DEFAULT_SUB, DevClient, is_scope_token

REFRESH_TOKEN_TYPE: Final = "refresh_token"


@dataclass
class TokenRecord:
    """What the server knows of one issued token (access or refresh)."""

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
    cnf: dict[str, str] | None = None  # RFC 7800 confirmation: jkt (DPoP), x5t#S256 (mTLS)


_THUMBPRINT = re.compile(r"[A-Za-z0-9_-]{43}")
"""A SHA-256 thumbprint in base64url: what ``jkt`` and ``x5t#S256`` hold."""


def confirmation(jkt: str | None, x5t_s256: str | None) -> dict[str, str] | None:
    """The ``cnf`` of a bound token (RFC 9449 6, RFC 8705 3.1), or ``None`` for a bearer token."""
    cnf = {name: value for name, value in (("jkt", jkt), ("x5t#S256", x5t_s256)) if value}
    for name, value in cnf.items():
        if not _THUMBPRINT.fullmatch(value):
            raise ValueError(
                f"{name} must be a SHA-256 thumbprint in base64url (43 characters), got {value!r}"
            )
    return cnf or None


@dataclass
class Grant:
    """One user's approval of one client (one authorization code).

    Its access and refresh tokens live and die together: revoking it makes
    them all inactive.
    """

    client_id: str
    sub: str
    scopes: tuple[str, ...]
    protocol: str
    auth_time: int
    session: str | None
    revoked: bool = False


class TokenStore:
    """Issued tokens and grants, and the answers about them (``DevStore`` builds it).

    ``introspection_calls`` counts authenticated introspection requests
    (``introspected`` per answer); ``clock_offset`` (seconds) makes the
    server's clock run ahead (or behind).
    """

    clients: dict[str, DevClient]
    token_lifetime: int
    issuer: str
    clock_offset: float
    introspection_calls: int
    introspected: Counter[str]
    _tokens: dict[str, TokenRecord]
    _grants: dict[str, Grant]
    _lock: threading.RLock

    @property
    def client(self) -> DevClient:
        """The first registered client (the default one)."""
        return next(iter(self.clients.values()))

    def now(self) -> float:
        """The server's clock (``time.time()`` plus ``clock_offset``)."""
        return time.time() + self.clock_offset

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
        jkt: str | None = None,
        x5t_s256: str | None = None,
    ) -> str:
        """Issue an access token for ``sub`` with ``scopes``; returns the opaque token.

        ``expires_in`` defaults to ``token_lifetime`` (0 or less: already
        expired); ``not_before`` is a NumericDate; ``client_id`` (the claim;
        any string) defaults to the first client. ``jkt`` binds the token to
        a DPoP key (its RFC 7638 thumbprint), ``x5t_s256`` to a client
        certificate (``x5t#S256``): introspection then answers ``cnf``.
        """
        cnf = confirmation(jkt, x5t_s256)
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
        record = TokenRecord(
            sub=sub,
            scopes=scopes,
            client_id=client_id,
            exp=int(now + lifetime),
            iat=int(now),
            jti=secrets.token_hex(8),
            nbf=None if not_before is None else int(not_before),
            aud=tuple(audience),
            username=username,
            cnf=cnf,
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

    def _revoke_locked(self, record: TokenRecord) -> None:
        record.revoked = True
        if record.token_type == REFRESH_TOKEN_TYPE and record.grant is not None:
            self._grants[record.grant].revoked = True

    def _is_active_locked(self, record: TokenRecord | None, now: float) -> bool:
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
        if record.cnf:
            answer["cnf"] = dict(record.cnf)
            if "jkt" in record.cnf:  # RFC 9449 6.2
                answer["token_type"] = "DPoP"
        return answer

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
