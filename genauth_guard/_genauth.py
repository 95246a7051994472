"""GenAuth's names for things: ``app_id``, ``secret``, ``app_host``, ``protocol``.

A GenAuth user knows those four values, not endpoint URLs. This module turns
them into the endpoints GenAuth's SDK builds (``{app_host}/{protocol}/token/
introspection`` and ``.../revocation``) and the client credentials, with the
validation the SDK lacks (``environment.py`` reads the same settings from
environment variables). Pure: no I/O, so ``from_genauth`` stays a
construction-time check that fails before the first request, not during it.

Every error is a ``ConfigurationError`` that names the option (or the
environment variable) the user has to change, and the values it accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from ._settings import (
    DEFAULT_AUTH_METHOD,
    ClientSettings,
    check_credentials,
    check_endpoint_url,
    parse_http_url,
)
from .errors import ConfigurationError

GenAuthProtocol = Literal["oidc", "oauth"]
PROTOCOLS: Final[tuple[GenAuthProtocol, ...]] = get_args(GenAuthProtocol)
DEFAULT_PROTOCOL: Final[GenAuthProtocol] = "oidc"
APP_HOST_EXAMPLE = "https://YOUR_DOMAIN.genauth.ai"


def check_protocol(protocol: object, option: str = "protocol") -> GenAuthProtocol:
    """``protocol`` if it is ``oidc`` or ``oauth``, else a ``ConfigurationError`` naming it."""
    for known in PROTOCOLS:
        if protocol == known:
            return known
    raise ConfigurationError(
        f"{option}={protocol!r} is not a GenAuth protocol; use one of " + ", ".join(PROTOCOLS) + "."
    )


def normalize_app_host(
    app_host: object, option: str = "app_host", *, allow_insecure_http: bool = False
) -> str:
    """``app_host`` as ``scheme://host[:port]``, or a ``ConfigurationError`` naming ``option``.

    A trailing slash is forgiven (dropped); a path, query or fragment is not:
    ``https://x.genauth.ai/oidc`` would silently become
    ``.../oidc/oidc/token/introspection``, which answers 404 on every request.
    """
    if not isinstance(app_host, str) or not app_host.strip():
        raise ConfigurationError(
            f"{option} is required: the GenAuth application's host, like {APP_HOST_EXAMPLE}."
        )
    text = app_host.strip()
    url = parse_http_url(text, option, APP_HOST_EXAMPLE)
    check_endpoint_url(text, option, allow_insecure_http=allow_insecure_http)
    path = url.path.rstrip("/")
    if url.query or "?" in text:
        raise ConfigurationError(f"{option}={text!r} must not have a ?query.")
    if path:
        hint = ""
        if path.strip("/") in PROTOCOLS:
            hint = f" and pass protocol={path.strip('/')!r}"
        raise ConfigurationError(
            f"{option}={text!r} must be the bare host, like {APP_HOST_EXAMPLE}: drop the path "
            f"{path!r}{hint}. The guard adds /{{protocol}}/token/introspection itself."
        )
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}"


@dataclass(frozen=True, slots=True)
class GenAuthEndpoints:
    """The URLs GenAuth serves an application's ``protocol`` at (``docs/genauth.md``)."""

    app_host: str
    protocol: GenAuthProtocol

    @property
    def issuer(self) -> str:
        """The issuer of the discovery document: ``{app_host}/{protocol}``."""
        return f"{self.app_host}/{self.protocol}"

    @property
    def introspection(self) -> str:
        return f"{self.issuer}/token/introspection"

    @property
    def revocation(self) -> str:
        return f"{self.issuer}/token/revocation"

    @property
    def userinfo(self) -> str:
        """GenAuth's profile endpoint, ``/me`` (POST with the access token)."""
        return f"{self.issuer}/me"

    @property
    def jwks(self) -> str:
        """Where GenAuth publishes its signing keys (always under ``/oidc``)."""
        return f"{self.app_host}/oidc/.well-known/jwks.json"

    @property
    def discovery(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"


def genauth_endpoints(
    app_host: str,
    protocol: str = DEFAULT_PROTOCOL,
    *,
    allow_insecure_http: bool = False,
    app_host_option: str = "app_host",
    protocol_option: str = "protocol",
) -> GenAuthEndpoints:
    """The endpoints of a GenAuth application, validated (``ConfigurationError`` if not)."""
    return GenAuthEndpoints(
        normalize_app_host(app_host, app_host_option, allow_insecure_http=allow_insecure_http),
        check_protocol(protocol, protocol_option),
    )


def genauth_settings(
    app_id: str,
    secret: str | None,
    app_host: str,
    protocol: str = DEFAULT_PROTOCOL,
    introspection_endpoint_auth_method: str = DEFAULT_AUTH_METHOD,
    revocation_endpoint_auth_method: str | None = None,
    *,
    allow_insecure_http: bool = False,
    private_key: bool = False,
) -> ClientSettings:
    """Endpoints and credentials from GenAuth's options (the ``from_genauth`` arguments).

    ``private_key``: whether a ``client_private_key`` was given.
    """
    endpoints = genauth_endpoints(app_host, protocol, allow_insecure_http=allow_insecure_http)
    client_id, client_secret, method, revocation = check_credentials(
        app_id,
        secret,
        introspection_endpoint_auth_method,
        revocation_endpoint_auth_method,
        private_key=private_key,
    )
    return ClientSettings(
        introspection_endpoint=endpoints.introspection,
        client_id=client_id,
        client_secret=client_secret,
        auth_method=method,
        revocation_endpoint=endpoints.revocation,
        revocation_auth_method=revocation,
        issuer=endpoints.issuer,
        jwks_uri=endpoints.jwks,
    )


__all__ = [
    "DEFAULT_AUTH_METHOD",
    "PROTOCOLS",
    "GenAuthEndpoints",
    "GenAuthProtocol",
    "check_protocol",
    "genauth_endpoints",
    "genauth_settings",
    "normalize_app_host",
]
