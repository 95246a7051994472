"""An embedded development authorization server that behaves like GenAuth.

For demos and tests only: everything lives in memory, users sign in by
picking their name (no passwords), and anyone holding a client's
credentials can mint a token for any subject. It binds 127.0.0.1 by
default. What it does implement, it implements by the RFCs, at the paths
GenAuth's SDK builds (``{app_host}/{oidc|oauth}/...``), so the SDK's
``AuthenticationClient`` runs its whole login-to-API flow against it:

- ``/{p}/auth``: the authorization code flow (RFC 6749 4.1) with PKCE
  (RFC 7636, S256 and plain), ``state`` and ``nonce``, redirect URIs matched
  exactly; a plain HTML login form, or ``auto_approve`` for tests;
- ``/{p}/token``: ``authorization_code`` (one use per code, PKCE checked),
  ``refresh_token`` (rotated: the old one stops working) and
  ``client_credentials``; an RS256 ``id_token`` under ``/oidc`` (verifiable
  with ``/oidc/.well-known/jwks.json``); client authentication exactly as
  each client is registered (``client_secret_post``, ``client_secret_basic``,
  ``none``, or a signed assertion: ``client_secret_jwt``, ``private_key_jwt``
  with the client's ``client_public_key``, RFC 7523), else 401
  ``invalid_client`` (RFC 6749 2.3, 5.2);
- ``/{p}/me``: the user's OpenID Connect claims, as the token's scopes allow;
- RFC 7662 introspection shaped like GenAuth's (``iss`` is the app host,
  without ``/oidc``); a token is active only inside its ``nbf``..``exp``
  window; asked with ``Accept: application/token-introspection+jwt``, the
  answer is an RFC 9701 JWT signed with the JWKS key; RFC 7009 revocation
  (unknown tokens are 200, another client's token is refused);
- logout at ``/oidc/session/end`` and ``/login/profile/logout``, to
  registered URIs only; discovery at ``/{p}/.well-known/openid-configuration``;
- ``POST /dev/tokens`` (not GenAuth's): mint a token for any ``sub`` and
  ``scope``, authenticated like the token endpoint.

Use it from Python (``DevAuthServer(clients, users=...)``, then
``.mint(sub=..., scopes=...)``), from the command line (``genauth-guard
dev-server [--config dev-users.toml]``) or from pytest (the
``genauth_dev_server`` fixture). ID tokens need PyJWT with cryptography
(the ``dev-server`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from . import _http, _login
from ._config import load_config
from ._model import DEFAULT_CLIENT_ID, DEFAULT_USER, PROTOCOLS, DevClient, DevUser
from ._store import DevStore

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_USER",
    "PROTOCOLS",
    "DevAuthServer",
    "DevClient",
    "DevUser",
]


class DevAuthServer(DevStore):
    """In-memory GenAuth-like authorization server (a Starlette app at ``.app``).

    Takes ``DevStore``'s arguments: ``clients``, and keywords ``users``,
    ``token_lifetime``, ``issuer``, ``auto_approve``, ``code_lifetime`` and
    ``refresh_token_lifetime``.
    """

    @cached_property
    def app(self) -> Starlette:
        """The ASGI app: the API endpoints and the browser pages."""
        return Starlette(routes=[*_http.routes(self), *_login.routes(self)])

    @classmethod
    def from_config(cls, path: str | Path, **overrides: Any) -> DevAuthServer:
        """A server with the clients, users and settings of a TOML or JSON file.

        ``overrides`` win over the file (``issuer=...``, ``auto_approve=True``...).
        See ``examples/dev-users.toml``.
        """
        try:
            return cls(**{**load_config(path), **overrides})
        except ValueError as exc:
            if str(path) in str(exc):
                raise
            raise ValueError(f"{path}: {exc}") from None

    @contextmanager
    def running(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve on ``host:port`` (0: a free port) in a thread; yields the base URL.

        Sets ``issuer`` to that URL. Needs uvicorn (the ``dev-server`` extra).
        """
        from .testing import serve_in_thread

        with serve_in_thread(self.app, host, port) as url:
            self.issuer = url
            yield url
