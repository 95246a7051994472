"""Development tooling: a local authorization server, the CLI, the demo and test helpers.

Nothing here is imported by the library a production API runs: the guard,
the introspectors and their parts never import this subpackage. It needs the
``dev-server`` extra (uvicorn) to serve anything.

- ``genauth_guard.dev.server``: ``DevAuthServer``, an in-memory authorization
  server with GenAuth's paths (also importable as ``genauth_guard.devserver``);
- ``genauth_guard.dev.testing``: ``serve_in_thread`` (also
  ``genauth_guard.testing``);
- ``genauth_guard.dev.cli``: the ``genauth-guard`` command;
- ``genauth_guard.dev.pytest_plugin``: the ``genauth_dev_server`` and
  ``genauth_token`` fixtures.
"""
