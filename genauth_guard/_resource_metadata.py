"""RFC 9728 protected-resource metadata: the document, where it lives, and the audience rule.

Pure, no I/O. The guards build one ``ProtectedResource`` from their
``protected_resource={...}`` option, answer ``GET``/``HEAD``/``OPTIONS`` at
its well-known paths with ``answer``, point every challenge at it
(``metadata_url``, RFC 9728 5.1) and refuse tokens whose ``aud`` does not
name it (``issued_for``, RFC 8707).

Everything is fixed at construction, from configuration only: behind a
proxy the document's URL and ``resource`` are what was configured, never
built from a request's ``Host`` header (which a client chooses).
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from .errors import ConfigurationError

WELL_KNOWN_PATH: Final = "/.well-known/oauth-protected-resource"
"""RFC 9728 3: the well-known URI suffix, at the host's root."""

ALLOWED_METHODS: Final = "GET, HEAD"
BEARER_METHODS: Final = frozenset({"header", "body", "query"})  # RFC 9728 2
MAX_AGE: Final = 300  # seconds clients and proxies may keep the document

# RFC 3986 2: the characters a URI may hold (no space, quote, backslash or non-ASCII).
_URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_URL_FIELDS: Final = (
    "jwks_uri",
    "resource_documentation",
    "resource_policy_uri",
    "resource_tos_uri",
)
_BOOL_FIELDS: Final = (
    "tls_client_certificate_bound_access_tokens",
    "dpop_bound_access_tokens_required",
)
_STRING_LIST_FIELDS: Final = (
    "resource_signing_alg_values_supported",
    "authorization_details_types_supported",
    "dpop_signing_alg_values_supported",
)
_STRING_FIELDS: Final = ("resource_name", "signed_metadata")
# RFC 6749 3.3 scope-token
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(value: object, option: str) -> str:
    """``value`` unchanged if it is an absolute https URL (http on loopback), no query or fragment.

    Kept exactly as given: a client compares ``resource`` with the URL it
    used, string for string (RFC 9728 3.3).
    """
    example = "https://api.example.com/mcp"
    if not isinstance(value, str) or not _URI_CHARS.fullmatch(value):
        raise ConfigurationError(
            f"{option}={value!r} must be an absolute URL in ASCII (percent-encode anything "
            f"else), such as {example!r}."
        )
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"{option}={value!r} is not a valid URL: {exc}.") from None
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigurationError(f"{option}={value!r} must be an absolute URL such as {example!r}.")
    if parts.scheme == "http" and not _is_loopback(host):
        raise ConfigurationError(
            f"{option}={value!r} must use https:// (plain http is allowed only on loopback, "
            "for development)."
        )
    if "?" in value or "#" in value:
        raise ConfigurationError(f"{option}={value!r} must have no query and no #fragment.")
    if "@" in parts.netloc:
        raise ConfigurationError(f"{option}={value!r} must not carry credentials.")
    if port == 0:
        raise ConfigurationError(f"{option}={value!r} has port 0.")
    if any(s in (".", "..") for s in parts.path.split("/")):
        raise ConfigurationError(f"{option}={value!r} must not hold '.' or '..' segments.")
    return value


def _string_list(value: object, option: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ConfigurationError(f"{option}={value!r} must be a list of strings.")
    if not all(isinstance(item, str) and item for item in value):
        raise ConfigurationError(f"{option}={value!r} must hold non-empty strings only.")
    return list(value)


def _json_value(value: object, option: str) -> object:
    """``value`` if it is plain JSON (no NaN, string keys), else ``ConfigurationError``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{option}={value!r} must be a JSON value (str, int, float, bool, None, lists "
            "and dicts with string keys)."
        ) from None
    return value


def _check_field(name: str, value: object) -> object:
    """One RFC 9728 field, checked by its kind; unknown fields must be plain JSON."""
    option = f"protected_resource[{name!r}]"
    base = name.split("#", 1)[0]  # resource_name#ja: a language-tagged variant (RFC 9728 2.1)
    if name == "authorization_servers":
        servers = _string_list(value, option)
        if not servers:
            raise ConfigurationError(
                f"{option} is empty; name the issuer of your authorization server "
                "(https://YOUR_DOMAIN.genauth.ai/oidc), or leave the field out."
            )
        return [check_url(s, f"{option} entry") for s in servers]
    if name == "scopes_supported":
        scopes = value.split() if isinstance(value, str) else _string_list(value, option)
        if not all(_SCOPE_TOKEN.fullmatch(s) for s in scopes):
            raise ConfigurationError(f"{option}={value!r} must be scope names without spaces.")
        return list(dict.fromkeys(scopes))
    if name == "bearer_methods_supported":
        methods = _string_list(value, option)
        unknown = sorted(set(methods) - BEARER_METHODS)
        if unknown:
            raise ConfigurationError(
                f"{option} has {unknown!r}; RFC 9728 knows 'header', 'body' and 'query'."
            )
        return methods
    if name in _URL_FIELDS:
        return check_url(value, option)
    if name in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise ConfigurationError(f"{option}={value!r} must be True or False.")
        return value
    if name in _STRING_LIST_FIELDS:
        values = _string_list(value, option)
        if name == "resource_signing_alg_values_supported" and "none" in values:
            raise ConfigurationError(f"{option} must not list 'none' (RFC 9728 2).")
        return values
    if base in _STRING_FIELDS:
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{option}={value!r} must be a non-empty string.")
        return value
    return _json_value(value, option)


def _strip_slash(value: str) -> str:
    return value[:-1] if value.endswith("/") else value


def audience_entry(audience: tuple[str, ...], resource: str) -> str | None:
    """The entry of ``aud`` that names ``resource`` (RFC 8707), or ``None``.

    Compared as exact strings, except that one trailing ``/`` on either side
    is ignored (``https://api.example.com/mcp`` and ``.../mcp/`` name the
    same resource; ``HTTPS://...`` does not).
    """
    wanted = _strip_slash(resource)
    return next((entry for entry in audience if _strip_slash(entry) == wanted), None)


@dataclass(frozen=True, slots=True)
class DocumentAnswer:
    """A complete HTTP answer the guard sends itself (the metadata document, 405, preflight)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class ProtectedResource:
    """The resource a guard protects, as RFC 9728 describes it; built once, checked at start-up.

    ``resource``: the identifier, as configured. ``metadata_url``: where the
    document lives (RFC 9728 3.1: the well-known suffix inserted between
    host and path), named in every challenge. ``paths``: the request paths
    the guard answers with the document, the path-inserted one and the
    root form ``/.well-known/oauth-protected-resource``.
    """

    __slots__ = ("_body", "document", "metadata_url", "paths", "resource")

    def __init__(self, fields: Mapping[str, Any], *, allow_query_token: bool = False) -> None:
        if not isinstance(fields, Mapping):
            raise ConfigurationError(
                f"protected_resource={fields!r} must be a dict of RFC 9728 fields, e.g. "
                "{'resource': 'https://api.example.com/mcp', 'authorization_servers': "
                "['https://YOUR_DOMAIN.genauth.ai/oidc']}."
            )
        if "resource" not in fields:
            raise ConfigurationError(
                "protected_resource needs 'resource': the URL clients use for this API, "
                "e.g. 'https://api.example.com/mcp'."
            )
        document: dict[str, Any] = {}
        for name, value in fields.items():
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"protected_resource has a field named {name!r}.")
            if name == "resource":
                document[name] = check_url(value, "protected_resource['resource']")
            else:
                document[name] = _check_field(name, value)
        if "bearer_methods_supported" not in document:
            document["bearer_methods_supported"] = (
                ["header", "query"] if allow_query_token else ["header"]
            )
        self.resource: str = document["resource"]
        self.document: Mapping[str, Any] = document
        parts = urlsplit(self.resource)
        path = "" if parts.path == "/" else parts.path
        self.metadata_url = f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_PATH}{path}"
        # Requests arrive percent-decoded (ASGI path, PATH_INFO): match them decoded.
        self.paths = frozenset({WELL_KNOWN_PATH + unquote(path), WELL_KNOWN_PATH})
        self._body = json.dumps(document, separators=(",", ":")).encode()

    def __repr__(self) -> str:
        return f"ProtectedResource(resource={self.resource!r})"

    def issued_for(self, audience: tuple[str, ...]) -> bool:
        """RFC 8707: ``aud`` names this resource (exact strings, one trailing ``/`` aside)."""
        return audience_entry(audience, self.resource) is not None

    def answer(self, method: str) -> DocumentAnswer:
        """The answer to ``method`` at one of ``paths``: the document, a preflight, or 405."""
        cors = (("Access-Control-Allow-Origin", "*"),)
        headers: tuple[tuple[str, str], ...]
        if method in ("GET", "HEAD"):
            headers = (
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(self._body))),
                ("Cache-Control", f"public, max-age={MAX_AGE}"),
                ("X-Content-Type-Options", "nosniff"),
                *cors,
            )
            return DocumentAnswer(200, headers, self._body if method == "GET" else b"")
        if method == "OPTIONS":
            headers = (
                ("Allow", ALLOWED_METHODS),
                ("Access-Control-Allow-Methods", ALLOWED_METHODS),
                ("Access-Control-Allow-Headers", "*"),
                ("Access-Control-Max-Age", "86400"),
                ("Content-Length", "0"),
                *cors,
            )
            return DocumentAnswer(204, headers, b"")
        body = json.dumps(
            {
                "error": "method_not_allowed",
                "error_description": f"The resource metadata is read with {ALLOWED_METHODS}.",
            }
        ).encode()
        headers = (
            ("Allow", ALLOWED_METHODS),
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            *cors,
        )
        return DocumentAnswer(405, headers, body)
