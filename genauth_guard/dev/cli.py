"""The ``genauth-guard`` command: ``demo``, ``dev-server`` and ``introspect``.

Built on argparse, not click: three subcommands with a handful of flags do
not need a framework, and the package's runtime dependencies stay what the
guard itself needs (starlette, httpx, cachetools) -- a server that never
runs the CLI should not install a CLI toolkit. argparse gives ``--help``,
subcommands and typed options; this module adds one-line errors.

This module builds the parser and dispatches; ``introspect`` lives in
``_introspect``, the servers in ``_servers``.

Exit status: ``introspect`` 0 active, 1 inactive, 2 error; servers 0 when
stopped with Ctrl-C (or SIGTERM); 2 for any usage or start-up error.
Errors are one line per problem on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NoReturn

from .._client_auth import AUTH_METHODS
from ..errors import GenAuthGuardError
from ._command import PROG, CommandError

if TYPE_CHECKING:
    pass

EXIT_ERROR, EXIT_INTERRUPTED = 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error instead of the usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions arrive pre-wrapped (``_wrap``); room for the long option names."""

    def __init__(self, prog: str) -> None:
        width = min(shutil.get_terminal_size().columns, 100)
        super().__init__(prog, max_help_position=30, width=width)


def _wrap(*paragraphs: str) -> str:
    return "\n\n".join(textwrap.fill(p, 78, break_on_hyphens=False) for p in paragraphs)


def _env_help(name: str) -> str:
    return "env: " + name


_METHODS = ", ".join(AUTH_METHODS)
_COMMANDS = (
    ("demo", "start here: an API behind the guard, a dev server, curl to try"),
    ("dev-server", "run the development authorization server (like GenAuth)"),
    ("introspect", "ask an authorization server about a token; print JSON"),
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also what ``--help`` prints)."""
    parser = _Parser(
        prog=PROG,
        usage="%(prog)s [--help] [--version] COMMAND [OPTIONS]",
        description=_wrap(
            "Protect HTTP APIs with OAuth 2.0 bearer tokens checked by introspection "
            "(RFC 7662), made for GenAuth."
        )
        + "\n\ncommands:\n"
        + "\n".join(f"  {name:<12} {what}" for name, what in _COMMANDS),
        formatter_class=_Formatter,
        epilog="Run 'genauth-guard COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, help=argparse.SUPPRESS, prog=PROG
    )

    demo = commands.add_parser(
        "demo",
        description=_wrap(
            "Start a development authorization server and an orders API behind "
            "GenAuthGuard on 127.0.0.1, mint tokens with different scopes, and print curl "
            "commands with the status each one gets (200, 401, 403, ...).",
            "Ctrl-C stops both.",
        ),
        formatter_class=_Formatter,
    )
    demo.add_argument(
        "--auth-port", type=_port, default=9000, help="dev server port (default 9000; 0: any free)"
    )
    demo.add_argument(
        "--api-port", type=_port, default=8000, help="orders API port (default 8000; 0: any free)"
    )

    dev = commands.add_parser(
        "dev-server",
        description=_wrap(
            "Run a GenAuth-like authorization server for development and tests, at GenAuth's "
            "paths under /oidc and /oauth: the authorization code flow with PKCE and a login "
            "form for dev users, refresh tokens, ID tokens, userinfo (/me), logout, "
            "client_credentials, introspection (RFC 7662), revocation (RFC 7009), discovery, "
            "and POST /dev/tokens to mint a token for any sub and scope. GenAuth's own SDK "
            "runs its whole login flow against it. It prints its endpoints and credentials.",
            "Clients and users come from --config (TOML or JSON, see examples/dev-users.toml), "
            "or the flags below describe one client and a default user signs in.",
            "Everything lives in memory. For development and tests only: never in production.",
        ),
        formatter_class=_Formatter,
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=_port, default=9000, help="port (default 9000; 0: any free)")
    dev.add_argument(
        "--config",
        metavar="FILE",
        help="clients, users and settings from a TOML (or .json) file; flags win over it",
    )
    dev.add_argument("--client-id", help="the client (default dev-client)")
    dev.add_argument("--client-secret", help="its secret (default: a random one, printed)")
    dev.add_argument(
        "--auth-method",
        choices=AUTH_METHODS,
        metavar="METHOD",
        help=f"how the client authenticates: {_METHODS} (default client_secret_post)",
    )
    dev.add_argument(
        "--client-key-file",
        metavar="FILE",
        help="private_key_jwt: the client's private key (PEM); a new P-256 key pair is "
        "made there if FILE does not exist. The server keeps only the public half",
    )
    dev.add_argument(
        "--redirect-uri",
        action="append",
        metavar="URI",
        help="where the client may receive codes (repeat for several; matched exactly)",
    )
    dev.add_argument(
        "--post-logout-redirect-uri",
        action="append",
        metavar="URI",
        help="where logout may send the browser (repeat for several)",
    )
    dev.add_argument(
        "--auto-approve",
        nargs="?",
        const=True,
        metavar="USER",
        help="sign in without the form: as the request's login_hint, else USER, else the "
        "first user",
    )
    dev.add_argument(
        "--token-lifetime",
        type=_positive_int,
        metavar="SECONDS",
        help="lifetime of issued tokens (default 3600)",
    )

    introspect = commands.add_parser(
        "introspect",
        description=_wrap(
            "Introspect one access token (RFC 7662) and print what the authorization server "
            "said as JSON. Exit status: 0 active, 1 inactive (expired, revoked or unknown), "
            "2 error.",
            "The settings are the GENAUTH_* environment variables Introspector.from_env() "
            "reads (the README lists them all), as genauth-guard dev-server prints them; "
            "each flag below overrides the variable it names. Keep the secret in "
            "GENAUTH_APP_SECRET: other users of this machine can see a command line.",
        ),
        epilog="examples:\n"
        "  export GENAUTH_APP_HOST=https://YOUR_DOMAIN.genauth.ai \\\n"
        "         GENAUTH_APP_ID=... GENAUTH_APP_SECRET=...\n"
        "  genauth-guard introspect TOKEN\n"
        "  genauth-guard introspect --protocol oauth - < token.txt\n\n"
        "  # another authorization server (the secret still from GENAUTH_APP_SECRET):\n"
        "  genauth-guard introspect --endpoint https://as.example.com/introspect \\\n"
        "      --client-id my-api TOKEN",
        formatter_class=_Formatter,
    )
    introspect.add_argument(
        "token",
        metavar="TOKEN",
        help="the access token; - reads it from stdin (write -- TOKEN if it starts with -)",
    )
    where = introspect.add_mutually_exclusive_group()
    where.add_argument(
        "--endpoint",
        metavar="URL",
        help="introspection endpoint of any RFC 7662 server, instead of an app host ("
        + _env_help("GENAUTH_INTROSPECTION_ENDPOINT")
        + ")",
    )
    where.add_argument(
        "--app-host",
        metavar="URL",
        help="GenAuth application host, like https://YOUR_DOMAIN.genauth.ai: the endpoint is "
        "then {app_host}/{protocol}/token/introspection (" + _env_help("GENAUTH_APP_HOST") + ")",
    )
    introspect.add_argument(
        "--protocol",
        choices=("oidc", "oauth"),
        help="GenAuth protocol, with --app-host (default oidc; "
        + _env_help("GENAUTH_PROTOCOL")
        + ")",
    )
    introspect.add_argument(
        "--client-id",
        metavar="ID",
        help="the application's App ID, its client_id (" + _env_help("GENAUTH_APP_ID") + ")",
    )
    introspect.add_argument(
        "--client-secret",
        metavar="SECRET",
        help="its App Secret; prefer the environment (" + _env_help("GENAUTH_APP_SECRET") + ")",
    )
    introspect.add_argument(
        "--auth-method",
        choices=AUTH_METHODS,
        metavar="METHOD",
        help=f"{_METHODS} (default client_secret_post; "
        + _env_help("GENAUTH_INTROSPECTION_AUTH_METHOD")
        + ")",
    )
    introspect.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="for the whole call (default 5; " + _env_help("GENAUTH_TIMEOUT") + ")",
    )
    introspect.add_argument(
        "--no-token-type-hint",
        action="store_true",
        help="do not send token_type_hint=access_token",
    )
    introspect.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=None,
        help="permit http:// to a host that is not loopback ("
        + _env_help("GENAUTH_ALLOW_INSECURE_HTTP=yes")
        + ")",
    )
    return parser


# ---------------------------------------------------------------- argument types


def _port(value: str) -> int:
    if not value.isdigit() or int(value) > 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535)")
    return int(value)


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds, 1 or more")
    return int(value)


def _seconds(value: str) -> str:
    """Seconds as ``GENAUTH_TIMEOUT`` takes them (``5``, ``2.5``); kept as text for it."""
    if not re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", value) or float(value) == 0:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of seconds, more than 0 (write it like 5 or 2.5)"
        )
    return value


def _version() -> str:
    from .. import __version__

    return __version__


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    prog = f"{PROG} {args.command}"
    try:
        if args.command == "introspect":
            from ._introspect import run_introspect

            return run_introspect(args, environ)
        from ._servers import run_demo, run_dev_server

        if args.command == "demo":
            return run_demo(args)
        return run_dev_server(args)
    except (CommandError, GenAuthGuardError, RuntimeError, OSError) as exc:
        # One line per problem (a configuration error may list several).
        problems = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
        for problem in problems or [type(exc).__name__]:
            print(f"{prog}: error: {problem}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
