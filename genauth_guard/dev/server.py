"""An embedded development authorization server that behaves like GenAuth.

For demos and tests only: tokens live in memory, there are no users, no
consent and no persistence, and anyone holding a client's credentials can
mint a token for any subject. It binds 127.0.0.1 by default. What it does
implement, it implements by the RFCs, at the paths GenAuth's SDK builds
(``{app_host}/{oidc|oauth}/token``, ``.../token/introspection``,
``.../token/revocation``, ``/oidc/.well-known/openid-configuration``):

- client authentication exactly as each client is registered
  (``client_secret_post``, ``client_secret_basic`` or ``none``); anything
  else is 401 ``invalid_client`` (RFC 6749 2.3, 5.2);
- the ``client_credentials`` grant (RFC 6749 4.4), for confidential clients;
- RFC 7662 answers shaped like GenAuth's (``iss`` is the app host, without
  ``/oidc``); a token is active only inside its ``nbf``..``exp`` window;
- RFC 7009 revocation: unknown tokens are 200, another client's token is
  refused;
- ``POST /dev/tokens`` (not GenAuth's): mint a token for any ``sub`` and
  ``scope``, authenticated like the token endpoint.

Use it from Python (``DevAuthServer().mint(sub=..., scopes=...)``), from the
command line (``genauth-guard dev-server``) or from pytest (the
``genauth_dev_server`` fixture).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from starlette.applications import Starlette

from ._http import routes
from ._model import DEFAULT_CLIENT_ID, PROTOCOLS, DevClient
from ._store import DevStore

__all__ = ["DEFAULT_CLIENT_ID", "PROTOCOLS", "DevAuthServer", "DevClient"]


class DevAuthServer(DevStore):
    """In-memory GenAuth-like authorization server (a Starlette app at ``.app``).

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
        super().__init__(clients, token_lifetime=token_lifetime, issuer=issuer)
        self.app = Starlette(routes=routes(self))

    @contextmanager
    def running(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve on ``host:port`` (0: a free port) in a thread; yields the base URL.

        Sets ``issuer`` to that URL. Needs uvicorn (the ``dev-server`` extra).
        """
        from .testing import serve_in_thread

        with serve_in_thread(self.app, host, port) as url:
            self.issuer = url
            yield url
