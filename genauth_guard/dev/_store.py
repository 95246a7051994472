"""The dev server's state and rules: clients, tokens, and the answers about them.

No HTTP here: ``_http`` serves these operations at GenAuth's paths, and
``server.DevAuthServer`` (this class plus its Starlette app) is what users
import. Every operation takes the one lock; the server runs in a thread
while tests call it from another.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .._client_auth import check_auth_method
from ._model import (
    DEFAULT_CLIENT_ID,
    DEFAULT_SUB,
    ENDPOINT_PATHS,
    PROTOCOLS,
    DevClient,
    is_scope_token,
)


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


class DevStore:
    """The in-memory authorization server without its HTTP face (``DevAuthServer`` adds it).

    ``issuer`` is the public base URL the server is reached at (``app_host``
    in GenAuth terms); ``running()`` sets it, it only shows in answers.
    ``introspection_calls`` counts authenticated introspection requests
    (``introspected`` per answer), so tests can check caching and single
    flight from the server's side. ``clock_offset`` (seconds) makes the
    server's clock run ahead (or behind) to test clock skew for real.
    """

    def __init__(
        self,
        clients: Iterable[DevClient] | None = None,
        *,
        token_lifetime: int = 3600,
        issuer: str = "http://127.0.0.1",
    ) -> None:
        if clients is None:
            clients = [DevClient(DEFAULT_CLIENT_ID, secrets.token_hex(16))]
        self.clients: dict[str, DevClient] = {}
        for client in clients:
            check_auth_method(client.auth_method)
            if client.auth_method != "none" and not client.client_secret:
                raise ValueError(f"client {client.client_id!r} needs a client_secret")
            self.clients[client.client_id] = client
        if not self.clients:
            raise ValueError("DevAuthServer needs at least one client")
        if isinstance(token_lifetime, bool) or token_lifetime <= 0:
            raise ValueError(f"token_lifetime={token_lifetime!r} must be seconds, more than 0")
        self.token_lifetime = token_lifetime
        self.issuer = issuer.rstrip("/")
        self.clock_offset = 0.0
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
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
        """The URL of ``token``, ``introspection`` or ``revocation``, as GenAuth's SDK builds it."""
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r} must be one of {', '.join(PROTOCOLS)}")
        if name not in ENDPOINT_PATHS:
            raise ValueError(f"no endpoint {name!r}; use one of {', '.join(ENDPOINT_PATHS)}")
        return f"{self.issuer}/{protocol}/{ENDPOINT_PATHS[name]}"

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
        """Revoke ``token`` whoever it was issued to (unknown tokens are ignored)."""
        with self._lock:
            record = self._tokens.get(token)
            if record is not None:
                record.revoked = True

    def answer(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for ``token``, shaped like GenAuth's.

        Active only if known, not revoked, and ``nbf <= now < exp`` on the
        server's clock (RFC 7662 2.2: "within its given time window").
        """
        with self._lock:
            record = self._tokens.get(token)
        now = self.now()
        if (
            record is None
            or record.revoked
            or now >= record.exp
            or (record.nbf is not None and now < record.nbf)
        ):
            return {"active": False}
        answer: dict[str, Any] = {
            "active": True,
            "client_id": record.client_id,
            "exp": record.exp,
            "iat": record.iat,
            "iss": self.issuer,
            "jti": record.jti,
            "scope": " ".join(record.scopes),
            "token_type": "Bearer",
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

        Only what this server really serves is named: no authorization,
        userinfo or end-session endpoint, and no ID tokens.
        """
        methods = sorted({c.auth_method for c in self.clients.values()})
        return {
            "issuer": f"{self.issuer}/{protocol}",
            "token_endpoint": self.endpoint("token", protocol),
            "introspection_endpoint": self.endpoint("introspection", protocol),
            "revocation_endpoint": self.endpoint("revocation", protocol),
            "jwks_uri": f"{self.issuer}/oidc/.well-known/jwks.json",
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": [],
            "token_endpoint_auth_methods_supported": methods,
            "introspection_endpoint_auth_methods_supported": methods,
            "revocation_endpoint_auth_methods_supported": methods,
        }

    def revoke_as(self, client_id: str, token: str) -> bool:
        """RFC 7009 revocation asked by ``client_id``.

        False (nothing revoked) if the token was issued to another client;
        True otherwise, unknown tokens included.
        """
        with self._lock:
            record = self._tokens.get(token)
            if record is None:
                return True
            if record.client_id != client_id:
                return False
            record.revoked = True
            return True

    def introspect(self, token: str) -> dict[str, Any]:
        """``answer(token)``, counted in ``introspection_calls`` (the HTTP endpoint's view)."""
        answer = self.answer(token)
        with self._lock:
            self.introspection_calls += 1
            self.introspected["active" if answer["active"] else "inactive"] += 1
        return answer
