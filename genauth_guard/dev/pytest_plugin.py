"""pytest fixtures: a real GenAuth-like authorization server for your own tests.

Installed with genauth-guard and loaded by pytest on its own (entry point
``pytest11``), so a test suite can protect its app with the real guard and
real introspection, and mint the tokens it needs::

    def test_orders_need_a_scope(genauth_dev_server, genauth_token):
        app = create_app(genauth_dev_server.introspector())
        ...  # serve app, then call it with
        headers = {"Authorization": "Bearer " + genauth_token("alice", "orders:read")}

Fixtures:

- ``genauth_dev_server`` (session): a ``DevServerHandle`` for a
  ``DevAuthServer`` on a free port of 127.0.0.1.
- ``genauth_token`` (function): ``genauth_token(sub="user-1", scopes=(), **kw)``
  mints a token there.
- ``genauth_dev_server_options`` (session): the server's settings; override
  it in a ``conftest.py`` to change the client (``client_id``,
  ``client_secret``, ``auth_method``, ``redirect_uris``,
  ``post_logout_redirect_uris``) or any other ``DevAuthServer`` argument
  (``token_lifetime``, ``users``, ``auto_approve``...) -- e.g. to run your
  front end's login flow against it.

Nothing is imported until a fixture is used, and the server needs uvicorn
(``pip install 'genauth-guard[dev-server]'``): a suite that does not use
these fixtures is not affected by the plugin at all.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .._introspector import Introspector
    from .._sync_introspector import SyncIntrospector
    from .server import DevAuthServer


@dataclass
class DevServerHandle:
    """A running dev server and the credentials of its client.

    ``url`` is the base URL (GenAuth's ``app_host``); ``server`` the
    ``DevAuthServer`` itself (``revoke``, ``introspection_calls``,
    ``clock_offset``...).
    """

    server: DevAuthServer
    url: str
    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: str
    _sync_introspectors: list[SyncIntrospector] = field(default_factory=list, repr=False)

    @property
    def introspection_endpoint(self) -> str:
        return self.server.endpoint("introspection")

    @property
    def revocation_endpoint(self) -> str:
        return self.server.endpoint("revocation")

    @property
    def token_endpoint(self) -> str:
        return self.server.endpoint("token")

    def endpoint(self, name: str = "introspection", protocol: str = "oidc") -> str:
        """``token``, ``introspection`` or ``revocation`` under ``/oidc`` or ``/oauth``."""
        return self.server.endpoint(name, protocol)

    def mint(self, sub: str | None = "user-1", scopes: Iterable[str] | str = (), **kw: Any) -> str:
        """A new active token for ``sub`` with ``scopes`` (see ``DevAuthServer.mint``)."""
        return self.server.mint(sub, scopes, **kw)

    def revoke(self, token: str) -> None:
        """Revoke ``token``: introspection says inactive from now on."""
        self.server.revoke(token)

    def _credentials(self, options: dict[str, Any]) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth_method": self.auth_method,
            **options,
        }

    def introspector(self, **options: Any) -> Introspector:
        """An ``Introspector`` for this server (close it: ``async with`` or ``aclose()``).

        ``options`` are ``Introspector``'s (``cache_ttl=0`` to see revocations at once).
        """
        from .._introspector import Introspector

        return Introspector(self.introspection_endpoint, **self._credentials(options))

    def sync_introspector(self, **options: Any) -> SyncIntrospector:
        """A ``SyncIntrospector`` for this server, closed when the test session ends."""
        from .._sync_introspector import SyncIntrospector

        introspector = SyncIntrospector(self.introspection_endpoint, **self._credentials(options))
        self._sync_introspectors.append(introspector)
        return introspector

    def close(self) -> None:
        while self._sync_introspectors:
            self._sync_introspectors.pop().close()


@pytest.fixture(scope="session")
def genauth_dev_server_options() -> dict[str, Any]:
    """Settings of ``genauth_dev_server``; override this fixture to change them."""
    return {
        "client_id": "dev-client",
        "client_secret": secrets.token_hex(16),
        "auth_method": "client_secret_post",
        "token_lifetime": 3600,
    }


@pytest.fixture(scope="session")
def genauth_dev_server(genauth_dev_server_options: dict[str, Any]) -> Iterator[DevServerHandle]:
    """A GenAuth-like authorization server on a free port of 127.0.0.1, for the session."""
    from .server import DevAuthServer, DevClient

    options = dict(genauth_dev_server_options)
    auth_method = options.pop("auth_method", "client_secret_post")
    client_secret = None if auth_method == "none" else options.pop("client_secret", None)
    options.pop("client_secret", None)
    client = DevClient(
        options.pop("client_id", "dev-client"),
        client_secret,
        auth_method,
        tuple(options.pop("redirect_uris", ())),
        tuple(options.pop("post_logout_redirect_uris", ())),
    )
    server = DevAuthServer([client], **options)
    running = server.running()
    problem = None
    try:
        url = running.__enter__()
    except RuntimeError as exc:  # uvicorn missing, or the server did not start
        problem = f"genauth_dev_server: {exc}"
    if problem is not None:  # outside the except: no "during handling" noise
        pytest.fail(problem, pytrace=False)
    handle = DevServerHandle(server, url, client.client_id, client_secret, auth_method)
    try:
        yield handle
    finally:
        handle.close()
        running.__exit__(None, None, None)


@pytest.fixture
def genauth_token(genauth_dev_server: DevServerHandle) -> Callable[..., str]:
    """Mint tokens: ``genauth_token("alice", "orders:read")`` returns an active token."""
    return genauth_dev_server.mint
