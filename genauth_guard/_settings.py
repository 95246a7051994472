"""Settings checked once, at construction, whoever the authorization server is.

Endpoint URLs (https, or http only where nobody can listen in), client
credentials and auth methods, and the numeric options of the introspectors.
Vendor-neutral: GenAuth's own names (``app_id``, ``app_host``...) are turned
into these settings by ``_genauth``, environment variables by
``_environment``, discovery documents by ``discovery``. Every error is a
``ConfigurationError`` that names the option to change.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Final

import httpx

from ._client_auth import AuthMethod, check_auth_method
from .errors import ConfigurationError

DEFAULT_AUTH_METHOD: Final[AuthMethod] = "client_secret_post"


def non_negative(name: str, value: object) -> float:
    """``value`` as seconds (0 or more), else a ``ConfigurationError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{name}={value!r} must be a number of seconds, 0 or more.")
    return float(value)


def positive_int(name: str, value: object, least: int = 1) -> int:
    """``value`` as a whole number of at least ``least``, else a ``ConfigurationError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"{name}={value!r} must be a whole number, {least} or more.")
    return value


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_http_url(url: object, option: str, example: str) -> httpx.URL:
    """``url`` parsed, if it is an absolute http(s) URL; else a ``ConfigurationError``.

    ``example`` shows the user what the option should look like.
    """
    try:
        parsed = httpx.URL(url)  # type: ignore[arg-type]
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"{option}={url!r} is not a valid URL: {exc}.") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ConfigurationError(
            f"{option}={url!r} must be an absolute https:// URL, for example {example}."
        )
    return parsed


def check_endpoint_url(url: str, option: str, *, allow_insecure_http: bool = False) -> str:
    """``url`` if it is an absolute https URL (or http on loopback); else ``ConfigurationError``.

    Tokens and client secrets travel in these requests: plain http would hand
    them to anyone on the path.
    """
    parsed = parse_http_url(url, option, "https://example.genauth.ai/oidc/token/introspection")
    if parsed.userinfo:
        raise ConfigurationError(
            f"{option} must not carry credentials in the URL; pass client_id and "
            "client_secret instead."
        )
    if parsed.fragment:
        raise ConfigurationError(f"{option}={url!r} must not have a #fragment.")
    if parsed.scheme == "http" and not allow_insecure_http and not is_loopback_host(parsed.host):
        raise ConfigurationError(
            f"{option}={url!r} uses plain http, which would send tokens and the client "
            "secret unencrypted; use https://, or pass allow_insecure_http=True if the "
            "network is trusted."
        )
    return str(parsed)


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Where to send requests and as whom: what a constructor needs besides tuning."""

    introspection_endpoint: str
    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: AuthMethod = DEFAULT_AUTH_METHOD
    revocation_endpoint: str | None = None
    revocation_auth_method: AuthMethod = DEFAULT_AUTH_METHOD
    issuer: str | None = None  # the server's issuer identifier, when known
    jwks_uri: str | None = None  # where it publishes its signing keys, when known


@dataclass(frozen=True, slots=True)
class OptionNames:
    """How the user spelled each setting, so errors name what they have to change."""

    app_id: str = "app_id"
    secret: str = "secret"
    introspection_auth_method: str = "introspection_endpoint_auth_method"
    revocation_auth_method: str = "revocation_endpoint_auth_method"


def check_credentials(
    app_id: object,
    secret: object,
    introspection_auth_method: object,
    revocation_auth_method: object | None,
    names: OptionNames = OptionNames(),
    *,
    private_key: bool = False,
) -> tuple[str, str | None, AuthMethod, AuthMethod]:
    """Validated ``(app_id, secret, introspection method, revocation method)``.

    The revocation method defaults to the introspection method: an
    application usually authenticates one way, and a public client
    (``none``) should not need a secret just because it might revoke.
    ``private_key_jwt`` needs ``private_key`` (a key was given) instead of
    a secret. Every problem found is in the one ``ConfigurationError``, a
    line each.
    """
    problems: list[str] = []
    if not isinstance(app_id, str) or not app_id.strip():
        problems.append(
            f"{names.app_id} is not set: it must be the GenAuth application's App ID "
            "(its client_id)."
        )
    if secret is not None and not isinstance(secret, str):
        problems.append(f"{names.secret} must be a str (the application's App Secret).")
    methods: dict[str, AuthMethod] = {}
    for option, value in (
        (names.introspection_auth_method, introspection_auth_method),
        (names.revocation_auth_method, revocation_auth_method),
    ):
        try:
            if value is not None:
                methods[option] = check_auth_method(_as_str(value), option)
        except ConfigurationError as exc:
            problems.append(str(exc))
    method = methods.get(names.introspection_auth_method, DEFAULT_AUTH_METHOD)
    if introspection_auth_method is None or names.introspection_auth_method in methods:
        # Only a valid (or default) method is inherited: an invalid one is reported
        # above, not again as a revocation method the user never set.
        methods.setdefault(names.revocation_auth_method, method)
    revocation = methods.get(names.revocation_auth_method, method)
    for option, used in methods.items():
        if used == "private_key_jwt" and not private_key:
            problems.append(
                f"{option}='private_key_jwt' needs the client's private key: pass "
                "client_private_key= (from_env: set GENAUTH_CLIENT_PRIVATE_KEY_FILE)."
            )
            break
        if used not in ("none", "private_key_jwt") and not secret:
            problems.append(
                f"{names.secret} is not set: {option}={used!r} needs the application's App "
                f"Secret. Set it, or use {option}='none' if the application is a public client."
            )
            break
    if problems:
        raise ConfigurationError("\n".join(problems))
    assert isinstance(app_id, str) and (secret is None or isinstance(secret, str))
    return app_id.strip(), secret or None, method, revocation


def _as_str(value: object) -> str:
    return value if isinstance(value, str) else repr(value)
