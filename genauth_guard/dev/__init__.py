"""Development tooling: a local authorization server, the CLI, the demo and test helpers.

Nothing here is imported by the library a production API runs: the guard,
the introspectors and their parts never import this subpackage. It needs the
``dev-server`` extra (uvicorn) to serve anything.

- ``genauth_guard.dev.server``: ``DevAuthServer``, an in-memory authorization
  server with GenAuth's paths -- a local GenAuth that GenAuth's own SDK runs
  its login flow against (also importable as ``genauth_guard.devserver``).
  Its parts: ``_model`` (clients, users), ``_store`` (settings, state,
  discovery) built on ``_tokens`` (minting, introspection, revocation),
  ``_userinfo`` (users' claims, ``/me``) and ``_codeflow`` (authorization
  code flow, sessions, refresh rotation, logout), ``_authorize``
  (authorization request and PKCE rules), ``_jose`` (ID token signing),
  ``_http`` (API endpoints), ``_login`` (login form, logout), ``_config``
  (TOML/JSON files);
- ``genauth_guard.dev.testing``: ``serve_in_thread`` (also
  ``genauth_guard.testing``);
- ``genauth_guard.dev.cli``: the ``genauth-guard`` command;
- ``genauth_guard.dev.pytest_plugin``: the ``genauth_dev_server`` and
  ``genauth_token`` fixtures.
"""
