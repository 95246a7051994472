"""The long-running commands, ``genauth-guard demo`` and ``genauth-guard dev-server``.

Both serve with uvicorn in background threads (``testing.serve_in_thread``)
while the main thread waits for Ctrl-C or SIGTERM, so stopping is the same
clean shutdown either way. What they print is built here as plain text: the
demo's curl commands are what its tests run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from .._client_auth import basic_credentials, check_auth_method
from .._introspector import Introspector
from .._settings import is_loopback_host
from ..errors import ConfigurationError
from ._command import PROG, CommandError
from ._config import load_config
from ._demo_app import create_app
from ._model import DEFAULT_CLIENT_ID
from .server import DevAuthServer, DevClient

# ---------------------------------------------------------------- demo


@dataclass(frozen=True)
class Demo:
    """The running demo: where things are, and what to try."""

    auth_url: str
    api_url: str
    server: DevAuthServer
    client: DevClient
    tries: tuple[tuple[int, str, str], ...]  # (expected status, why, curl command)


class CannotListen(CommandError):
    """A server could not bind its port (the message says which and what to do)."""


@contextmanager
def listening(app: Any, host: str, port: int, what: str, option: str) -> Iterator[str]:
    """``serve_in_thread``, with a taken or forbidden port explained in one line."""
    from .testing import serve_in_thread

    try:
        server = serve_in_thread(app, host, port)
        url = server.__enter__()
    except OSError as exc:
        raise CannotListen(
            f"cannot serve the {what} on {host}:{port} ({exc.strerror or exc}); "
            f"pass {option} with another port, or {option} 0 for a free one"
        ) from None
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


def _curl(
    url: str,
    token: str | None = None,
    *,
    header: str | None = None,
    method: str | None = None,
    json_body: str | None = None,
) -> str:
    parts = ["curl", "-i"]
    if method is not None:
        parts += ["-X", method]
    if token is not None:
        header = f"Authorization: Bearer {token}"
    if header is not None:
        parts += ["-H", header]
    if json_body is not None:
        parts += ["-H", "Content-Type: application/json", "-d", json_body]
    return shlex.join([*parts, url])


def _tries(server: DevAuthServer, api: str) -> tuple[tuple[int, str, str], ...]:
    """The requests to try, each with the status the guard (or the route) answers."""
    reader = server.mint("alice", "orders:read")
    writer = server.mint("bob", "orders:read orders:write")
    profile_only = server.mint("carol", "profile")
    revoked = server.mint("alice", "orders:read")
    server.revoke(revoked)
    orders = f"{api}/orders"
    new_order = '{"item": "mouse"}'
    return (
        (200, "/health is open: no token needed", _curl(f"{api}/health")),
        (401, "no token: a bare Bearer challenge", _curl(orders)),
        (200, "alice's token has orders:read", _curl(orders, reader)),
        (200, "who the token speaks for", _curl(f"{api}/me", reader)),
        (403, "carol's token lacks orders:read: insufficient_scope", _curl(orders, profile_only)),
        (401, "a revoked token: invalid_token", _curl(orders, revoked)),
        (401, "a token nobody issued: invalid_token", _curl(orders, "not-a-real-token")),
        (
            400,
            "a malformed Authorization header: invalid_request",
            _curl(orders, header="Authorization: Bearer two tokens"),
        ),
        (
            403,
            "alice may read orders but not create them",
            _curl(orders, reader, method="POST", json_body=new_order),
        ),
        (201, "bob has orders:write", _curl(orders, writer, method="POST", json_body=new_order)),
    )


@contextmanager
def start_demo(auth_port: int, api_port: int) -> Iterator[Demo]:
    """Start the dev server and the orders API on 127.0.0.1; stop both when the block ends."""
    client = DevClient("demo-api", secrets.token_hex(16), "client_secret_post")
    server = DevAuthServer([client])
    with ExitStack() as stack:
        server.issuer = stack.enter_context(
            listening(server.app, "127.0.0.1", auth_port, "authorization server", "--auth-port")
        )
        auth_url = server.issuer
        introspector = Introspector(
            server.endpoint("introspection"),
            client_id=client.client_id,
            client_secret=client.client_secret,
        )
        app = create_app(introspector)
        api_url = stack.enter_context(
            listening(app, "127.0.0.1", api_port, "orders API", "--api-port")
        )
        yield Demo(auth_url, api_url, server, client, _tries(server, api_url))


def describe(demo: Demo, program: str) -> str:
    """What the demo prints: where things run, then each curl with its expected status."""
    secret = demo.client.client_secret or ""
    mint = shlex.join(
        [
            "curl",
            "-s",
            "-d",
            f"client_id={demo.client.client_id}",
            "-d",
            f"client_secret={secret}",
            "-d",
            "sub=dave",
            "-d",
            "scope=orders:read",
            f"{demo.auth_url}/dev/tokens",
        ]
    )
    lines = [
        "genauth-guard demo: an orders API behind GenAuthGuard, checked against a",
        "development authorization server that behaves like GenAuth (tokens in memory).",
        "",
        f"  orders API                {demo.api_url}",
        f"  authorization server      {demo.auth_url}",
        f"  introspection endpoint    {demo.server.endpoint('introspection')}",
        f"  the API authenticates as  client_id={demo.client.client_id} "
        f"client_secret={secret} ({demo.client.auth_method})",
        "",
        "Try these; the expected status is on the line above each command:",
        "",
    ]
    for status, why, command in demo.tries:
        lines += [f"# expect {status}: {why}", command, ""]
    lines += [
        "Mint your own token (prints JSON with access_token):",
        "# expect 200: a token for dave with orders:read",
        mint,
        "",
        "Ask the authorization server about a token:",
        f"GENAUTH_APP_HOST={demo.auth_url} GENAUTH_APP_ID={demo.client.client_id} "
        f"GENAUTH_APP_SECRET={secret} {program} introspect TOKEN",
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- running


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM and SIGINT stop the servers like Ctrl-C does (clean shutdown, exit 0)."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    # A process started in the background inherits SIGINT ignored, and Python
    # then installs no KeyboardInterrupt handler: install it, so an explicit
    # SIGINT (a supervisor, a test, kill -INT) still stops the servers.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)


def _wait_for_interrupt() -> None:
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


def _program() -> str:
    """How the user started us, to print commands they can paste."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0).startswith(PROG):
        return shlex.quote(argv0)
    return f"{shlex.quote(sys.executable)} -m genauth_guard.dev.cli"


def run_demo(args: argparse.Namespace) -> int:
    """``genauth-guard demo``: returns 0 once stopped."""
    with _sigterm_as_interrupt(), start_demo(args.auth_port, args.api_port) as demo:
        print(describe(demo, _program()), flush=True)
        _wait_for_interrupt()
    print("\nStopped.", flush=True)
    return 0


def _client_lines(client: DevClient) -> list[str]:
    lines = [
        f"  client_id                {client.client_id}",
        f"  client_secret            {client.client_secret or '(none: a public client)'}",
        f"  auth method              {client.auth_method}",
    ]
    for uri in client.redirect_uris:
        lines.append(f"  redirect_uri             {uri}")
    for uri in client.post_logout_redirect_uris:
        lines.append(f"  post-logout redirect     {uri}")
    if not client.redirect_uris:
        lines.append(
            "  redirect_uri             (none: no login flow; pass --redirect-uri or --config)"
        )
    return lines


def dev_server_banner(server: DevAuthServer, url: str) -> str:
    """What ``dev-server`` prints: endpoints, credentials, users, and how to use them."""

    client = server.client
    secret = client.client_secret or ""
    if client.auth_method == "client_secret_basic":
        auth = ["-H", "Authorization: " + basic_credentials(client.client_id, secret)]
    elif client.auth_method == "client_secret_post":
        auth = ["-d", f"client_id={client.client_id}", "-d", f"client_secret={secret}"]
    else:
        auth = ["-d", f"client_id={client.client_id}"]
    mint = ["curl", "-s", *auth, "-d", "sub=alice", "-d", "scope=orders:read", f"{url}/dev/tokens"]
    env = [f"GENAUTH_APP_HOST={url}", f"GENAUTH_APP_ID={client.client_id}"]
    if client.client_secret:
        env.append(f"GENAUTH_APP_SECRET={secret}")
    if client.auth_method != "client_secret_post":
        env.append(f"GENAUTH_INTROSPECTION_AUTH_METHOD={client.auth_method}")
    clients = [line for c in server.clients.values() for line in ["", *_client_lines(c)]]
    users = [
        f"  {user.sub:<24} {user.display_name}" + (f" <{user.email}>" if user.email else "")
        for user in server.users.values()
    ]
    if server.auto_approve is True:
        login = "auto-approved (login_hint, else the first user)"
    elif server.auto_approve:
        login = f"auto-approved as {server.auto_approve} (unless login_hint names another)"
    else:
        login = "a form: pick a user"
    lines = [
        "genauth-guard dev-server: a GenAuth-like authorization server for development and",
        "tests. Everything lives in memory and dies with it. Never use it in production.",
        "",
        f"  app_host (issuer)        {url}",
        f"  authorize                {server.endpoint('authorization')}",
        f"  token endpoint           {server.endpoint('token')}",
        f"  userinfo                 {server.endpoint('userinfo')}",
        f"  introspection endpoint   {server.endpoint('introspection')}",
        f"  revocation endpoint      {server.endpoint('revocation')}",
        f"  logout                   {server.end_session_endpoint()}",
        f"  jwks                     {server.jwks_uri}",
        f"  discovery                {url}/oidc/.well-known/openid-configuration",
        "                           (the same endpoints are served under /oauth/)",
        *clients,
        "",
        f"  token lifetime           {server.token_lifetime} s",
        f"  login                    {login}",
        "",
        "Users (sub, name):",
        *users,
        "",
        "Point your API at it (Introspector.from_env() and genauth-guard introspect read these):",
        *(f"  export {shlex.quote(item)}" for item in env),
        "",
        "Mint a token for a user, with scopes (prints JSON with access_token):",
        "  " + shlex.join(mint),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


_CLIENT_FLAGS = (
    ("client_id", "--client-id"),
    ("client_secret", "--client-secret"),
    ("auth_method", "--auth-method"),
    ("redirect_uri", "--redirect-uri"),
    ("post_logout_redirect_uri", "--post-logout-redirect-uri"),
    ("client_key_file", "--client-key-file"),
)


def build_dev_server(args: argparse.Namespace) -> DevAuthServer:
    """The server ``dev-server`` runs: the config file's, with the flags over it."""
    settings: dict[str, Any] = {}
    if args.config:
        try:
            settings = load_config(args.config)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(
                f"cannot read --config {args.config}: {exc.strerror or exc}"
            ) from None
    if "clients" in settings:
        given = [flag for dest, flag in _CLIENT_FLAGS if getattr(args, dest) is not None]
        if given:
            raise CommandError(
                f"{args.config} registers the clients; drop {', '.join(given)} or its [[clients]]"
            )
    else:
        method = check_auth_method(args.auth_method or "client_secret_post", "--auth-method")
        if method == "none" and args.client_secret:
            raise CommandError("--client-secret makes no sense with --auth-method none; drop one")
        public_key = _client_public_key(args, method)
        unsigned = method in ("none", "private_key_jwt")
        secret = None if unsigned else args.client_secret or secrets.token_hex(16)
        try:
            client = DevClient(
                args.client_id or DEFAULT_CLIENT_ID,
                secret,
                method,
                tuple(args.redirect_uri or ()),
                tuple(args.post_logout_redirect_uri or ()),
                client_public_key=public_key,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        settings["clients"] = [client]
    if args.token_lifetime is not None:
        settings["token_lifetime"] = args.token_lifetime
    if args.auto_approve is not None:
        settings["auto_approve"] = args.auto_approve
    try:
        return DevAuthServer(**settings)
    except ValueError as exc:
        where = f"{args.config}: " if args.config else ""
        raise CommandError(f"{where}{exc}") from None


def _client_public_key(args: argparse.Namespace, method: str) -> str | None:
    """The public key of ``--client-key-file`` (made if missing), for ``private_key_jwt``."""
    path = getattr(args, "client_key_file", None)
    if method != "private_key_jwt":
        if path is not None:
            raise CommandError("--client-key-file is for --auth-method private_key_jwt")
        return None
    if args.client_secret:
        raise CommandError("--client-secret makes no sense with private_key_jwt; drop it")
    if path is None:
        raise CommandError(
            "--auth-method private_key_jwt needs --client-key-file FILE: the client's private "
            "key (PEM), made as a new P-256 key pair if FILE does not exist"
        )
    from ._signing import client_key_pair

    try:
        return client_key_pair(path)
    except (OSError, ConfigurationError) as exc:
        raise CommandError(f"--client-key-file {path}: {exc}") from None


def client_key_lines(args: argparse.Namespace) -> list[str]:
    """How a client uses the key pair ``dev-server`` made (the key itself stays in its file)."""
    path = getattr(args, "client_key_file", None)
    if path is None:
        return []
    return [
        "",
        f"The client signs its requests (private_key_jwt) with the key in {path};",
        "the server knows only its public half. Add to the variables above:",
        f"  GENAUTH_CLIENT_PRIVATE_KEY_FILE={path}",
        "  GENAUTH_INTROSPECTION_AUTH_METHOD=private_key_jwt",
        "  GENAUTH_JWT_RESPONSE=true   # optional: signed introspection answers (RFC 9701)",
        "or in code: Introspector.from_genauth(app_id, None, app_host,",
        "    introspection_endpoint_auth_method='private_key_jwt',",
        f"    client_private_key=open({str(path)!r}).read())",
        "(pip install 'genauth-guard[jose]')",
    ]


def run_dev_server(args: argparse.Namespace) -> int:
    """``genauth-guard dev-server``: returns 0 once stopped."""
    server = build_dev_server(args)
    if not is_loopback_host(args.host):
        print(
            f"{PROG} dev-server: warning: {args.host} is reachable from other machines, and "
            "anyone holding the client's credentials can mint tokens for any user here",
            file=sys.stderr,
        )
    with (
        _sigterm_as_interrupt(),
        listening(server.app, args.host, args.port, "dev server", "--port") as url,
    ):
        server.issuer = url
        print(dev_server_banner(server, url), flush=True)
        for line in client_key_lines(args):
            print(line, flush=True)
        _wait_for_interrupt()
    print("\nStopped.", flush=True)
    return 0
