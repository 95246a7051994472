"""Validation of endpoint URLs: https, or http only where nobody can listen in."""

from __future__ import annotations

import ipaddress

import httpx

from .errors import ConfigurationError


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str, option: str, *, allow_insecure_http: bool = False) -> str:
    """``url`` if it is an absolute https URL (or http on loopback); else ``ConfigurationError``.

    Tokens and client secrets travel in these requests: plain http would hand
    them to anyone on the path.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise ConfigurationError(f"{option}={url!r} is not a valid URL: {exc}.") from None
    if parsed.scheme not in ("https", "http") or not parsed.host:
        raise ConfigurationError(
            f"{option}={url!r} must be an absolute https:// URL, for example "
            "https://example.genauth.ai/oidc/token/introspection."
        )
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
