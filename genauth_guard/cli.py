"""The ``genauth-guard`` command: ``demo``, ``dev-server`` and ``introspect``.

Built on argparse, not click: three subcommands with a handful of flags do
not need a framework, and the package's runtime dependencies stay what the
guard itself needs (starlette, httpx, cachetools) -- a server that never
runs the CLI should not install a CLI toolkit. argparse gives ``--help``,
subcommands and typed options; this module adds one-line errors and
environment-variable defaults.

Exit status: ``introspect`` 0 active, 1 inactive, 2 error; servers 0 when
stopped with Ctrl-C (or SIGTERM); 2 for any usage or start-up error.
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import fields
from typing import Any, NoReturn

from .client_auth import AUTH_METHODS
from .errors import GenAuthGuardError
from .token_info import TokenInfo

PROG = "genauth-guard"
EXIT_ACTIVE, EXIT_INACTIVE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class CommandError(Exception):
    """A problem the user can fix; its message is printed as the one error line."""


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
    return "\n\n".join(textwrap.fill(p, 78) for p in paragraphs)


def _env_help(*names: str) -> str:
    return "env: " + " or ".join(names)


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
            "Run a GenAuth-like authorization server for development and tests: "
            "client_credentials tokens, introspection (RFC 7662), revocation (RFC 7009) and "
            "discovery at GenAuth's paths under /oidc and /oauth, and POST /dev/tokens to "
            "mint a token for any sub and scope. It prints its endpoints and credentials.",
            "Tokens live in memory. For development and tests only: never in production.",
        ),
        formatter_class=_Formatter,
    )
    dev.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    dev.add_argument("--port", type=_port, default=9000, help="port (default 9000; 0: any free)")
    dev.add_argument("--client-id", default="dev-client", help="the client (default dev-client)")
    dev.add_argument("--client-secret", help="its secret (default: a random one, printed)")
    dev.add_argument(
        "--auth-method",
        choices=AUTH_METHODS,
        default="client_secret_post",
        metavar="METHOD",
        help=f"how the client authenticates: {_METHODS} (default client_secret_post)",
    )
    dev.add_argument(
        "--token-lifetime",
        type=_positive_int,
        default=3600,
        metavar="SECONDS",
        help="lifetime of issued tokens (default 3600)",
    )

    introspect = commands.add_parser(
        "introspect",
        description=_wrap(
            "Introspect one access token (RFC 7662) and print what the authorization server "
            "said as JSON. Exit status: 0 active, 1 inactive (expired, revoked or unknown), "
            "2 error.",
            "Every option can also come from the environment; prefer that for the secret, "
            "which other users of this machine can see on a command line.",
        ),
        epilog="examples:\n"
        "  GENAUTH_APP_HOST=https://example.genauth.ai GENAUTH_APP_ID=... \\\n"
        "  GENAUTH_APP_SECRET=... genauth-guard introspect TOKEN\n\n"
        "  genauth-guard introspect --client-id dev-client \\\n"
        "    --endpoint http://127.0.0.1:9000/oidc/token/introspection - < token.txt",
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
        help="introspection endpoint (" + _env_help("GENAUTH_INTROSPECTION_ENDPOINT") + ")",
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
        "--client-id", metavar="ID", help=_env_help("GENAUTH_CLIENT_ID", "GENAUTH_APP_ID")
    )
    introspect.add_argument(
        "--client-secret",
        metavar="SECRET",
        help=_env_help("GENAUTH_CLIENT_SECRET", "GENAUTH_APP_SECRET"),
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
        type=_positive_float,
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
        + _env_help("GENAUTH_ALLOW_INSECURE_HTTP")
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


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 < number < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds, more than 0")
    return number


def _version() -> str:
    from . import __version__

    return __version__


# ---------------------------------------------------------------- introspect


def _env(environ: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return value
    return None


def _endpoint(args: argparse.Namespace, environ: Mapping[str, str], insecure: bool) -> str:
    """--endpoint, --app-host, GENAUTH_INTROSPECTION_ENDPOINT, GENAUTH_APP_HOST: first wins.

    An app host becomes ``{app_host}/{protocol}/token/introspection``, as
    GenAuth's SDK builds it (``genauth.genauth_endpoints``).
    """
    if args.endpoint:
        return str(args.endpoint)
    host, option = args.app_host, "--app-host"
    if host is None:
        endpoint = _env(environ, "GENAUTH_INTROSPECTION_ENDPOINT")
        if endpoint is not None:
            return endpoint
        host, option = _env(environ, "GENAUTH_APP_HOST"), "GENAUTH_APP_HOST"
    if host is None:
        raise CommandError(
            "no introspection endpoint: pass --endpoint URL or --app-host URL, or set "
            "GENAUTH_INTROSPECTION_ENDPOINT or GENAUTH_APP_HOST"
        )
    from .genauth import genauth_endpoints

    protocol = args.protocol or _env(environ, "GENAUTH_PROTOCOL") or "oidc"
    endpoints = genauth_endpoints(
        host,
        protocol,
        allow_insecure_http=insecure,
        app_host_option=option,
        protocol_option="--protocol" if args.protocol else "GENAUTH_PROTOCOL",
    )
    return endpoints.introspection


def _insecure(args: argparse.Namespace, environ: Mapping[str, str]) -> bool:
    if args.allow_insecure_http:
        return True
    value = (_env(environ, "GENAUTH_ALLOW_INSECURE_HTTP") or "no").lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise CommandError(f"GENAUTH_ALLOW_INSECURE_HTTP={value!r} is not yes or no")
    return value in ("1", "true", "yes", "on")


def introspector_options(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, Any]:
    """``SyncIntrospector`` arguments from the flags, then the environment."""
    insecure = _insecure(args, environ)
    client_id = args.client_id or _env(environ, "GENAUTH_CLIENT_ID", "GENAUTH_APP_ID")
    if not client_id:
        raise CommandError(
            "no client id: pass --client-id, or set GENAUTH_CLIENT_ID (or GENAUTH_APP_ID)"
        )
    timeout: float = args.timeout or 5.0
    if args.timeout is None and (text := _env(environ, "GENAUTH_TIMEOUT")):
        try:
            timeout = _positive_float(text)
        except argparse.ArgumentTypeError as exc:
            raise CommandError(f"GENAUTH_TIMEOUT: {exc}") from None
    return {
        "introspection_endpoint": _endpoint(args, environ, insecure),
        "client_id": client_id,
        "client_secret": args.client_secret
        or _env(environ, "GENAUTH_CLIENT_SECRET", "GENAUTH_APP_SECRET"),
        "auth_method": args.auth_method
        or _env(environ, "GENAUTH_INTROSPECTION_AUTH_METHOD")
        or "client_secret_post",
        "timeout": timeout,
        "token_type_hint": None if args.no_token_type_hint else "access_token",
        "allow_insecure_http": insecure,
        "cache_ttl": 0.0,
        "negative_cache_ttl": 0.0,
    }


def token_info_json(info: TokenInfo) -> dict[str, Any]:
    """The answer's named fields as JSON values (``claims`` left out: it may hold anything)."""
    result: dict[str, Any] = {}
    for f in fields(info):
        if f.name == "claims":
            continue
        value = getattr(info, f.name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        result[f.name] = value
    return result


def _read_token(argument: str) -> str:
    token = sys.stdin.readline().strip() if argument == "-" else argument.strip()
    if not token:
        raise CommandError("the token is empty; pass it as TOKEN, or - to read it from stdin")
    return token


def run_introspect(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from ._logging import logger
    from .sync_introspector import SyncIntrospector

    if not logging.getLogger().handlers and not logger.handlers:
        # The failure is reported below as the one error line; the library's own
        # warning would say it twice (through logging's last-resort stderr handler).
        logger.addHandler(logging.NullHandler())

    options = introspector_options(args, environ)
    token = _read_token(args.token)
    with SyncIntrospector(options.pop("introspection_endpoint"), **options) as introspector:
        info = introspector.introspect(token)
    print(json.dumps(token_info_json(info), indent=2))
    return EXIT_ACTIVE if info.active else EXIT_INACTIVE


# ---------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run the command; returns the exit status (the console script exits with it)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    prog = f"{PROG} {args.command}"
    try:
        if args.command == "introspect":
            return run_introspect(args, environ)
        from ._cli_servers import run_demo, run_dev_server

        if args.command == "demo":
            return run_demo(args)
        return run_dev_server(args)
    except (CommandError, GenAuthGuardError, RuntimeError, OSError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"{prog}: error: {message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
