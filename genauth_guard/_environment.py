"""Settings from environment variables: ``from_env``'s half of the configuration.

Twelve-factor deployments configure through the environment. The variables
carry GenAuth's names (``GENAUTH_APP_ID``, ``GENAUTH_APP_SECRET``,
``GENAUTH_APP_HOST``...) and go through the same checks as ``from_genauth``'s
arguments, but every complaint names the variable to change, values are read
strictly (``5m`` is not a number of seconds), and all problems are reported
at once. Pure: the environment is a mapping handed in.
"""

from __future__ import annotations

import difflib
import logging
import math
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

from ._genauth import (
    APP_HOST_EXAMPLE,
    DEFAULT_PROTOCOL,
    GenAuthEndpoints,
    check_protocol,
    normalize_app_host,
)
from ._jose import load_private_key
from ._settings import (
    DEFAULT_AUTH_METHOD,
    ClientSettings,
    OptionNames,
    check_credentials,
    check_endpoint_url,
)
from .errors import ConfigurationError

if TYPE_CHECKING:
    from ._options import TuningOptions

logger = logging.getLogger("genauth_guard")

T = TypeVar("T")

ENV_VARIABLES: Final[tuple[str, ...]] = (
    "APP_ID",
    "APP_SECRET",
    "APP_HOST",
    "PROTOCOL",
    "INTROSPECTION_AUTH_METHOD",
    "REVOCATION_AUTH_METHOD",
    "INTROSPECTION_ENDPOINT",
    "REVOCATION_ENDPOINT",
    "CACHE_TTL",
    "NEGATIVE_CACHE_TTL",
    "CACHE_MAXSIZE",
    "TIMEOUT",
    "LEEWAY",
    "ALLOW_INSECURE_HTTP",
    "CLIENT_PRIVATE_KEY_FILE",
    "CLIENT_KEY_ID",
    "CLIENT_ASSERTION_ALG",
    "JWT_RESPONSE",
    "JWKS_URI",
    "JWT_RESPONSE_ISSUER",
)
"""The names ``from_env`` reads, after the prefix (``GENAUTH_`` by default)."""

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_COUNT = re.compile(r"[0-9]+")
_MAX_SECONDS = 1e9  # about 31 years: more is a typo, and float("9" * 400) is infinity
_MAX_DIGITS = 18  # any count beyond is a typo; and int() refuses over 4300 digits (ValueError)
_MAX_SHOWN = 40  # characters of a wrong value a message repeats
_MAX_KEY_FILE_BYTES = 64 * 1024  # an RSA-8192 PEM is under 7 KiB: more is the wrong file
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class _Environment:
    """Typed, strict reads of ``{prefix}{NAME}``; empty or blank counts as unset.

    A malformed value reads as unset and its complaint goes to ``problems``,
    so all of them can be reported together.
    """

    def __init__(self, environ: Mapping[str, str], prefix: str) -> None:
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                f"prefix={prefix!r} must be an environment variable name prefix, like 'GENAUTH_'."
            )
        self.environ = environ
        self.prefix = prefix
        self.problems: list[str] = []

    def name(self, suffix: str) -> str:
        return self.prefix + suffix

    def text(self, suffix: str) -> str | None:
        value = self.environ.get(self.name(suffix))
        return (value.strip() or None) if isinstance(value, str) else None

    def secret(self, suffix: str) -> str | None:
        """A secret exactly as set: never stripped, and refused if it starts or ends in blanks.

        A stray newline from ``echo`` or a copied line is part of what the
        variable holds; stripping it silently would use a secret other than
        the one set, trimming only here would hide the difference. The value
        never appears in the complaint.
        """
        value = self.environ.get(self.name(suffix))
        if not isinstance(value, str) or not value.strip():
            return None
        if value != value.strip():
            self.problems.append(
                f"{self.name(suffix)} starts or ends with whitespace (a space, tab or "
                "newline, often left by echo or a copied line); remove the whitespace from "
                "the variable. The secret is used exactly as set."
            )
        return value

    def shown(self, value: str) -> str:
        """``value`` quoted for a message, cut short if long (it may be thousands of digits)."""
        if len(value) <= _MAX_SHOWN:
            return repr(value)
        return f"{value[:_MAX_SHOWN]!r}... ({len(value)} characters)"

    def seconds(self, suffix: str, *, positive: bool = False) -> float | None:
        value = self.text(suffix)
        if value is None:
            return None
        seconds = float(value) if _SECONDS.fullmatch(value) else math.nan
        if not 0 <= seconds < _MAX_SECONDS or (positive and seconds == 0):
            least = "more than 0" if positive else "0 or more"
            self.problems.append(
                f"{self.name(suffix)}={self.shown(value)} is not a number of seconds ({least}); "
                "write it like 300 or 2.5, without a unit."
            )
            return None
        return seconds

    def count(self, suffix: str) -> int | None:
        value = self.text(suffix)
        if value is None:
            return None
        digits = value.lstrip("0")
        if not _COUNT.fullmatch(value) or not digits or len(digits) > _MAX_DIGITS:
            self.problems.append(
                f"{self.name(suffix)}={self.shown(value)} is not a whole number (1 or more); "
                f"write it like 10000, without separators, in at most {_MAX_DIGITS} digits."
            )
            return None
        return int(digits)

    def flag(self, suffix: str) -> bool | None:
        value = self.text(suffix)
        if value is None:
            return None
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.problems.append(
            f"{self.name(suffix)}={self.shown(value)} is not a yes/no value; use one of "
            + ", ".join(_TRUE + _FALSE)
            + "."
        )
        return None

    def key_file(self, suffix: str) -> str | None:
        """The private key in the file ``{prefix}{suffix}`` names, checked; never quoted.

        Read here, at start-up, so a missing, unreadable, encrypted or
        public-only key is reported with the other problems, naming the
        variable and the file, never the content.
        """
        path = self.text(suffix)
        if path is None:
            return None
        name = self.name(suffix)
        try:
            with open(path, "rb") as file:
                data = file.read(_MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            self.problems.append(
                f"{name}={self.shown(path)} cannot be read ({type(exc).__name__}: "
                f"{exc.strerror or 'failed'}); point it at the client's private key file "
                "(PEM or JWK) and make it readable by this process."
            )
            return None
        if len(data) > _MAX_KEY_FILE_BYTES:
            self.problems.append(
                f"{name}={self.shown(path)} is larger than {_MAX_KEY_FILE_BYTES} bytes; it is "
                "not a private key file."
            )
            return None
        text = data.decode("ascii", errors="replace")
        checked = self.checked(load_private_key, text, option=f"the key in {name}")
        return None if checked is None else text

    def checked(self, check: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``check(*args, **kwargs)``, or ``None`` with its complaint kept in ``problems``."""
        try:
            return check(*args, **kwargs)
        except ConfigurationError as exc:
            self.problems.append(str(exc))
            return None

    def warn_about_misspellings(self) -> None:
        """Log set variables that look like a misspelled setting (a typo is otherwise silent)."""
        known = [self.name(suffix) for suffix in ENV_VARIABLES]
        for variable in self.environ:
            if variable.startswith(self.prefix) and variable not in known:
                close = difflib.get_close_matches(variable, known, n=1, cutoff=0.85)
                if close:
                    logger.warning(
                        "%s is not a setting genauth-guard reads; %s?", variable, close[0]
                    )


def settings_from_env(
    environ: Mapping[str, str], prefix: str = "GENAUTH_", *, allow_insecure_http: bool = False
) -> tuple[ClientSettings, TuningOptions]:
    """Client settings and tuning options from ``{prefix}*`` variables (see ``ENV_VARIABLES``).

    Unset variables take ``from_genauth``'s defaults. ``{prefix}INTROSPECTION_ENDPOINT``
    serves authorization servers other than GenAuth: with it, ``{prefix}APP_HOST``
    is not needed. ``allow_insecure_http`` is the default of
    ``{prefix}ALLOW_INSECURE_HTTP``. Every problem is reported at once, so a
    deployment is fixed in one round, not one variable per restart.
    """
    env = _Environment(environ, prefix)
    env.warn_about_misspellings()
    options = _read_tuning(env)
    private_key = env.key_file("CLIENT_PRIVATE_KEY_FILE")
    if private_key is not None:
        options["client_private_key"] = private_key
    credentials = env.checked(
        check_credentials,
        env.text("APP_ID"),
        env.secret("APP_SECRET"),
        env.text("INTROSPECTION_AUTH_METHOD") or DEFAULT_AUTH_METHOD,
        env.text("REVOCATION_AUTH_METHOD"),
        OptionNames(
            app_id=env.name("APP_ID"),
            secret=env.name("APP_SECRET"),
            introspection_auth_method=env.name("INTROSPECTION_AUTH_METHOD"),
            revocation_auth_method=env.name("REVOCATION_AUTH_METHOD"),
        ),
        private_key=env.text("CLIENT_PRIVATE_KEY_FILE") is not None,
    )
    endpoints = _env_endpoints(env, options.get("allow_insecure_http", allow_insecure_http))
    if env.problems or credentials is None or endpoints is None:
        raise ConfigurationError("\n".join(env.problems))
    client_id, secret, method, revocation_method = credentials
    settings = ClientSettings(
        introspection_endpoint=endpoints[0],
        client_id=client_id,
        client_secret=secret,
        auth_method=method,
        revocation_endpoint=endpoints[1],
        revocation_auth_method=revocation_method,
        issuer=endpoints[2],
        jwks_uri=endpoints[3],
    )
    return settings, options


def _read_tuning(env: _Environment) -> TuningOptions:
    options: TuningOptions = {}
    if (insecure := env.flag("ALLOW_INSECURE_HTTP")) is not None:
        options["allow_insecure_http"] = insecure
    if (cache_ttl := env.seconds("CACHE_TTL")) is not None:
        options["cache_ttl"] = cache_ttl
    if (negative_cache_ttl := env.seconds("NEGATIVE_CACHE_TTL")) is not None:
        options["negative_cache_ttl"] = negative_cache_ttl
    if (cache_maxsize := env.count("CACHE_MAXSIZE")) is not None:
        options["cache_maxsize"] = cache_maxsize
    if (timeout := env.seconds("TIMEOUT", positive=True)) is not None:
        options["timeout"] = timeout
    if (leeway := env.seconds("LEEWAY")) is not None:
        options["leeway"] = leeway
    if (key_id := env.text("CLIENT_KEY_ID")) is not None:
        options["client_key_id"] = key_id
    if (alg := env.text("CLIENT_ASSERTION_ALG")) is not None:
        options["client_assertion_alg"] = alg
    if (jwt_response := env.flag("JWT_RESPONSE")) is not None:
        options["jwt_response"] = jwt_response
    if (jwks_uri := env.text("JWKS_URI")) is not None:
        options["jwks_uri"] = jwks_uri
    if (jwt_issuer := env.text("JWT_RESPONSE_ISSUER")) is not None:
        options["jwt_response_issuer"] = jwt_issuer
    return options


def _env_endpoints(
    env: _Environment, allow_insecure_http: bool
) -> tuple[str, str | None, str | None, str | None] | None:
    """The introspection and revocation endpoints, issuer and JWKS: explicit ones win over
    ``APP_HOST``'s (which also gives GenAuth's issuer and JWKS URI).

    Each variable is checked on its own; complaints go to ``env.problems``.
    """
    explicit: dict[str, str | None] = {}
    for suffix in ("INTROSPECTION_ENDPOINT", "REVOCATION_ENDPOINT"):
        if (url := env.text(suffix)) is not None:
            explicit[suffix] = env.checked(
                check_endpoint_url, url, env.name(suffix), allow_insecure_http=allow_insecure_http
            )
    protocol = env.checked(
        check_protocol, env.text("PROTOCOL") or DEFAULT_PROTOCOL, env.name("PROTOCOL")
    )
    host = env.text("APP_HOST")
    issuer = jwks = None
    if host is None:
        if "INTROSPECTION_ENDPOINT" not in explicit:
            env.problems.append(
                f"{env.name('APP_HOST')} is not set: set it to the GenAuth application's host "
                f"(like {APP_HOST_EXAMPLE}), or set {env.name('INTROSPECTION_ENDPOINT')} to "
                "the introspection endpoint of another authorization server."
            )
    else:
        app_host = env.checked(
            normalize_app_host, host, env.name("APP_HOST"), allow_insecure_http=allow_insecure_http
        )
        if app_host is not None and protocol is not None:
            endpoints = GenAuthEndpoints(app_host, protocol)
            explicit.setdefault("INTROSPECTION_ENDPOINT", endpoints.introspection)
            explicit.setdefault("REVOCATION_ENDPOINT", endpoints.revocation)
            issuer, jwks = endpoints.issuer, endpoints.jwks
    introspection = explicit.get("INTROSPECTION_ENDPOINT")
    if introspection is None:
        return None
    return introspection, explicit.get("REVOCATION_ENDPOINT"), issuer, jwks
