"""``genauth-guard introspect``: ask the authorization server about one token.

The command has no configuration code of its own: its flags are written
over the ``GENAUTH_*`` variables they stand for and ``SyncIntrospector.
from_env`` reads the result, so the command and a deployed app read the
same settings with the same checks, and flags win over the environment.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any, Final

from .._token_info import TokenInfo
from ..errors import ConfigurationError
from ._command import PROG, CommandError

if TYPE_CHECKING:
    from .._sync_introspector import SyncIntrospector

EXIT_ACTIVE, EXIT_INACTIVE = 0, 1

_FLAG_VARIABLES: Final[tuple[tuple[str, str, str], ...]] = (
    # (argparse dest, flag, the from_env variable the flag stands for)
    ("endpoint", "--endpoint", "GENAUTH_INTROSPECTION_ENDPOINT"),
    ("app_host", "--app-host", "GENAUTH_APP_HOST"),
    ("protocol", "--protocol", "GENAUTH_PROTOCOL"),
    ("client_id", "--client-id", "GENAUTH_APP_ID"),
    ("client_secret", "--client-secret", "GENAUTH_APP_SECRET"),
    ("auth_method", "--auth-method", "GENAUTH_INTROSPECTION_AUTH_METHOD"),
    ("timeout", "--timeout", "GENAUTH_TIMEOUT"),
    ("allow_insecure_http", "--allow-insecure-http", "GENAUTH_ALLOW_INSECURE_HTTP"),
)
"""The flags that override a ``GENAUTH_*`` variable; ``from_env`` reads the rest as is."""

_QUOTED = r"""(?:='(?:[^'\\]|\\.)*'|="(?:[^"\\]|\\.)*")?"""


def _given(args: argparse.Namespace, dest: str) -> bool:
    return getattr(args, dest) not in (None, False)


def environment_with_flags(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with each given flag written over its variable: flags win, one parser reads.

    ``from_env`` prefers an explicit endpoint to the app host's; between flag
    and environment the flag must win either way, so ``--endpoint`` blanks
    ``GENAUTH_APP_HOST`` (empty counts as unset) and ``--app-host`` blanks
    ``GENAUTH_INTROSPECTION_ENDPOINT``.
    """
    overlay = dict(environ)
    for dest, _flag, variable in _FLAG_VARIABLES:
        value = getattr(args, dest)
        if _given(args, dest):
            overlay[variable] = "yes" if value is True else str(value)
    if _given(args, "endpoint"):
        overlay["GENAUTH_APP_HOST"] = ""
    if _given(args, "app_host"):
        overlay["GENAUTH_INTROSPECTION_ENDPOINT"] = ""
    return overlay


def name_flags(message: str, args: argparse.Namespace) -> str:
    """A ``from_env`` complaint in the user's terms: each variable with its flag.

    A variable the user set with a flag is called by the flag's name; one
    that came from the environment (or is missing) keeps its name, followed
    the first time by ``(or --flag)``, so the user learns both ways to fix it.
    """
    for dest, flag, variable in _FLAG_VARIABLES:
        mention = re.compile(rf"\b{variable}\b{_QUOTED}")
        if _given(args, dest):
            message = re.sub(rf"\b{variable}\b", flag, message)
        else:
            message = mention.sub(rf"\g<0> (or {flag})", message, count=1)
    for option, as_flag in (
        ("pass allow_insecure_http=True", "pass --allow-insecure-http"),
        ("pass protocol=", "pass --protocol "),
    ):
        message = message.replace(option, as_flag)
    return message


class _WarningLines(logging.Handler):
    """Warnings while reading the environment, as ``genauth-guard introspect: warning:`` lines.

    ``from_env`` logs a set variable that looks misspelled (``GENAUTH_APP_SECERT``);
    the command would otherwise only say the real one is missing.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{PROG} introspect: warning: {record.getMessage()}", file=sys.stderr)


def build_introspector(args: argparse.Namespace, environ: Mapping[str, str]) -> SyncIntrospector:
    """``SyncIntrospector.from_env`` on the environment with the flags over it.

    Raises ``CommandError`` naming every problem, one per line.
    """
    from .._logging import logger
    from .._sync_introspector import SyncIntrospector

    warnings = _WarningLines()
    logger.addHandler(warnings)
    try:
        return SyncIntrospector.from_env(
            environ=environment_with_flags(args, environ),
            token_type_hint=None if args.no_token_type_hint else "access_token",
        )
    except ConfigurationError as exc:
        raise CommandError(name_flags(str(exc), args)) from None
    finally:
        logger.removeHandler(warnings)


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
    from .._logging import logger

    if not logging.getLogger().handlers and not logger.handlers:
        # The failure is reported below as the one error line; the library's own
        # warning would say it twice (through logging's last-resort stderr handler).
        logger.addHandler(logging.NullHandler())

    with build_introspector(args, environ) as introspector:
        info = introspector.introspect(_read_token(args.token))
    print(json.dumps(token_info_json(info), indent=2))
    return EXIT_ACTIVE if info.active else EXIT_INACTIVE
