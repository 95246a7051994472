"""Authorization server metadata: RFC 8414 and OpenID Connect Discovery 1.0.

``from_discovery`` reads the server's own description of its endpoints and
client authentication methods instead of trusting hand-typed URLs. Three
rules make that safe: the document's ``issuer`` must be identical to the
issuer we asked for (RFC 8414 section 3.3, OpenID Discovery section 4.3:
compared as strings, so a trailing slash or the host's case count; a
document that names another issuer is refused, so a misconfigured or hostile
document cannot point us at someone else's endpoints); every endpoint it
names must pass the same https check as a configured one; and an https
issuer's endpoints must be https too, even on loopback, unless
``allow_insecure_http`` (a document fetched over TLS must not send tokens
and the client secret somewhere in clear text).

Parsing and choosing are pure functions. The one fetch is synchronous on
purpose: discovery happens once, at start-up, often at import time before any
event loop exists, and constructors of both introspectors must be able to do
it. Documents are cached per URL for ``METADATA_CACHE_TTL`` seconds so several
introspectors (or workers re-importing the app) fetch once. The fetch has one
deadline, ``timeout`` seconds from connect to last byte (``deadline.py``): a
server trickling its answer cannot hold a start-up for longer.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx

from ._client_auth import AUTH_METHODS, AuthMethod, check_auth_method
from ._deadline import send_with_deadline
from ._protocol import error_for_status, transport_error
from ._settings import ClientSettings, OptionNames, check_credentials, check_endpoint_url
from .errors import AuthorizationServerUnavailable, ConfigurationError

__all__ = ["METADATA_CACHE_TTL", "ServerMetadata", "clear_metadata_cache", "fetch_metadata"]

logger = logging.getLogger("genauth_guard")

METADATA_CACHE_TTL = 3600.0
"""Seconds a fetched metadata document is reused (``clear_metadata_cache`` forgets them)."""

MAX_METADATA_BYTES = 256 * 1024
OPENID_CONFIGURATION = "/.well-known/openid-configuration"
OAUTH_AUTHORIZATION_SERVER = "/.well-known/oauth-authorization-server"

# With a secret, the method GenAuth applications are set up with by default comes first.
_PREFERENCE: tuple[AuthMethod, ...] = (
    "client_secret_post",
    "client_secret_basic",
    "client_secret_jwt",
)


@dataclass(frozen=True, slots=True)
class ServerMetadata:
    """What the discovery document says, checked.

    ``*_auth_methods`` are the methods genauth-guard implements that the
    server advertises, in the server's order; empty when the server did not
    say (then the methods are "determined by other means", RFC 8414).
    """

    url: str
    issuer: str
    introspection_endpoint: str
    revocation_endpoint: str | None
    introspection_auth_methods: tuple[AuthMethod, ...]
    revocation_auth_methods: tuple[AuthMethod, ...]
    document: Mapping[str, Any] = field(repr=False, compare=False)
    jwks_uri: str | None = None


def metadata_locations(issuer_or_metadata_url: str) -> tuple[str, tuple[str, ...]]:
    """The issuer to expect, and the metadata URLs to try, in order.

    A URL with ``/.well-known/`` in it is the document's own URL, and the
    issuer is derived from it the way RFC 8414 section 3.1 and OpenID
    Discovery section 4 build it; any other URL is the issuer, and both
    well-known locations are tried (OpenID's first: GenAuth serves that one).

    The issuer is kept as typed (host case, trailing slash), because the
    document's must be identical to it; only the URLs to fetch are
    normalised, a trailing slash dropped before the well-known part is
    inserted as both specifications say.
    """
    if not isinstance(issuer_or_metadata_url, str) or not issuer_or_metadata_url.strip():
        raise ConfigurationError(
            "issuer_or_metadata_url is required: the issuer (GenAuth: "
            "https://YOUR_DOMAIN.genauth.ai/oidc) or its discovery document's URL."
        )
    text = issuer_or_metadata_url.strip()
    try:
        url = httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ConfigurationError(f"issuer_or_metadata_url={text!r} is not a URL: {exc}.") from None
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigurationError(
            f"issuer_or_metadata_url={text!r} must be an absolute https:// URL, like "
            "https://YOUR_DOMAIN.genauth.ai/oidc."
        )
    if url.query or url.fragment:
        raise ConfigurationError(
            f"issuer_or_metadata_url={text!r} must not have a ?query or #fragment (RFC 8414)."
        )
    origin = str(url.copy_with(path="/")).rstrip("/")
    path = url.path.rstrip("/")
    typed = urlsplit(text)
    typed_origin = text[: len(typed.scheme) + len("://") + len(typed.netloc)]
    typed_path = typed.path.rstrip("/")
    if path.endswith(OPENID_CONFIGURATION):
        issuer = typed_origin + typed_path[: -len(OPENID_CONFIGURATION)]
        return issuer, (origin + path,)
    if path.startswith(OAUTH_AUTHORIZATION_SERVER):
        return typed_origin + typed_path[len(OAUTH_AUTHORIZATION_SERVER) :], (origin + path,)
    if "/.well-known/" in path + "/":
        raise ConfigurationError(
            f"issuer_or_metadata_url={text!r} is neither an issuer nor a "
            f"{OPENID_CONFIGURATION} or {OAUTH_AUTHORIZATION_SERVER} document URL."
        )
    return text, (origin + path + OPENID_CONFIGURATION, origin + OAUTH_AUTHORIZATION_SERVER + path)


def _methods(document: Mapping[str, Any], name: str, url: str) -> tuple[AuthMethod, ...]:
    value = document.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise ConfigurationError(f"The metadata at {url} has a {name} that is not a string list.")
    known = tuple(method for method in AUTH_METHODS if method in value)
    if value and not known:
        raise ConfigurationError(
            f"The metadata at {url} lists only {', '.join(value)} in {name}; genauth-guard "
            "authenticates with " + ", ".join(AUTH_METHODS) + "."
        )
    return tuple(sorted(known, key=value.index))


def parse_metadata(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    url: str,
    expected_issuer: str,
    allow_insecure_http: bool = False,
) -> ServerMetadata:
    """The checked ``ServerMetadata`` of an answer, or why it cannot be used.

    5xx/429 and network failures are ``AuthorizationServerUnavailable`` (retry
    the start-up later); anything else wrong is a ``ConfigurationError``.
    """
    if status != 200:
        error = error_for_status("discovery", status, headers, body)
        if isinstance(error, AuthorizationServerUnavailable):
            raise error
        raise ConfigurationError(
            f"No usable discovery document at {url} (HTTP {status}); check the issuer URL "
            "(GenAuth: https://YOUR_DOMAIN.genauth.ai/oidc)."
        )
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        document = None
    if not isinstance(document, dict):
        raise ConfigurationError(f"The discovery document at {url} is not a JSON object.")
    issuer = document.get("issuer")
    if not isinstance(issuer, str) or issuer != expected_issuer:
        raise ConfigurationError(
            f"The discovery document at {url} names the issuer {issuer!r}, not "
            f"{expected_issuer!r} (RFC 8414 3.3): it describes another server and is refused. "
            "Issuers must be identical, trailing slash and host case included: check the "
            "issuer URL you configured, and type it exactly as the server names itself."
        )
    introspection = document.get("introspection_endpoint")
    if not isinstance(introspection, str):
        raise ConfigurationError(
            f"The discovery document at {url} has no introspection_endpoint: the server does "
            "not offer RFC 7662 introspection there. Pass the endpoint to the constructor."
        )
    revocation = document.get("revocation_endpoint")
    jwks_uri = document.get("jwks_uri")
    for name, value in (("revocation_endpoint", revocation), ("jwks_uri", jwks_uri)):
        if value is not None and not isinstance(value, str):
            raise ConfigurationError(
                f"The discovery document at {url} has a {name} that is not a string."
            )
    return ServerMetadata(
        url=url,
        issuer=issuer,
        introspection_endpoint=_endpoint(
            introspection, "introspection_endpoint", url, issuer, allow_insecure_http
        ),
        revocation_endpoint=None
        if revocation is None
        else _endpoint(revocation, "revocation_endpoint", url, issuer, allow_insecure_http),
        introspection_auth_methods=_methods(
            document, "introspection_endpoint_auth_methods_supported", url
        )
        or _methods(document, "token_endpoint_auth_methods_supported", url),
        revocation_auth_methods=_methods(
            document, "revocation_endpoint_auth_methods_supported", url
        ),
        document=MappingProxyType(document),
        jwks_uri=_optional_endpoint(jwks_uri, "jwks_uri", url, issuer, allow_insecure_http),
    )


def _optional_endpoint(
    value: str | None, name: str, url: str, issuer: str, allow_insecure_http: bool
) -> str | None:
    """An endpoint only some features use: refused ones are dropped with a warning.

    A bad ``jwks_uri`` must not stop an introspector that never reads it;
    one that needs it (``jwt_response=True``) then says it has none.
    """
    if value is None:
        return None
    try:
        return _endpoint(value, name, url, issuer, allow_insecure_http)
    except ConfigurationError as exc:
        logger.warning("the discovery document's %s is ignored: %s", name, exc)
        return None


def _endpoint(value: str, name: str, url: str, issuer: str, allow_insecure_http: bool) -> str:
    """An endpoint the document names, checked like a configured one, and not weaker than it.

    ``check_endpoint_url`` lets plain http through on loopback (a local dev
    server); an https issuer has no business naming one, so there it takes
    ``allow_insecure_http`` too.
    """
    option = f"{name} (from {url})"
    checked = check_endpoint_url(value, option, allow_insecure_http=allow_insecure_http)
    if (
        not allow_insecure_http
        and httpx.URL(checked).scheme == "http"
        and urlsplit(issuer).scheme == "https"
    ):
        raise ConfigurationError(
            f"{option}={value!r} uses plain http, but the https issuer {issuer!r} named it: "
            "tokens and the client secret would go there unencrypted. Fix the server's "
            "metadata to name an https:// endpoint, or pass allow_insecure_http=True if the "
            "network is trusted."
        )
    return checked


def choose_auth_method(
    supported: Sequence[AuthMethod],
    client_secret: str | None,
    requested: str | None,
    *,
    option: str,
    fallback: AuthMethod | None = None,
    private_key: bool = False,
) -> AuthMethod:
    """The client authentication method to use at one endpoint.

    An explicit ``requested`` method is used even if the server does not list
    it (metadata can be incomplete), with a warning. Otherwise: ``fallback``
    if the server supports it (or says nothing); with a private key
    ``private_key_jwt`` if the server lists it (or says nothing: the key is
    the "other means" RFC 8414 leaves it to); then with a secret
    ``client_secret_post``, ``client_secret_basic`` or ``client_secret_jwt``,
    without one ``none``.
    """
    if requested is not None:
        method = check_auth_method(requested, option)
        if supported and method not in supported:
            logger.warning(
                "%s=%r is not among the methods the server advertises (%s); using it anyway",
                option,
                method,
                ", ".join(supported),
            )
        return method
    if fallback is not None and (not supported or fallback in supported):
        return fallback
    candidates = _PREFERENCE if client_secret else ("none",)
    if private_key:
        candidates = ("private_key_jwt", *(candidates if client_secret else ()))
    for method in candidates:
        if not supported or method in supported:
            return method
    if private_key:
        raise ConfigurationError(
            f"The server does not list private_key_jwt here (it accepts "
            f"{', '.join(supported)}), so client_private_key cannot be used; pass "
            f"{option} and the credentials it needs explicitly."
        )
    key_hint = ""
    if "private_key_jwt" in supported:
        key_hint = " (or client_private_key=, the client's key for private_key_jwt)"
    if client_secret:
        raise ConfigurationError(
            f"The server only accepts {', '.join(supported)} here; drop client_secret{key_hint}, "
            f"or pass {option} explicitly."
        )
    raise ConfigurationError(
        f"The server needs a client secret here (it accepts {', '.join(supported)}); pass "
        f"client_secret{key_hint}."
    )


def discovered_settings(
    metadata: ServerMetadata,
    client_id: str,
    client_secret: str | None,
    auth_method: str | None = None,
    revocation_auth_method: str | None = None,
    *,
    private_key: bool = False,
) -> ClientSettings:
    """Endpoints from the document, auth methods the server supports (or the ones asked for).

    ``private_key``: whether a ``client_private_key`` was given. The
    issuer and ``jwks_uri`` come along, for signed assertions and answers.
    """
    method = choose_auth_method(
        metadata.introspection_auth_methods,
        client_secret,
        auth_method,
        option="auth_method",
        private_key=private_key,
    )
    revocation = choose_auth_method(
        metadata.revocation_auth_methods,
        client_secret,
        revocation_auth_method,
        option="revocation_auth_method",
        fallback=method,
        private_key=private_key,
    )
    client_id, secret, method, revocation = check_credentials(
        client_id,
        client_secret,
        method,
        revocation,
        OptionNames("client_id", "client_secret", "auth_method", "revocation_auth_method"),
        private_key=private_key,
    )
    return ClientSettings(
        introspection_endpoint=metadata.introspection_endpoint,
        client_id=client_id,
        client_secret=secret,
        auth_method=method,
        revocation_endpoint=metadata.revocation_endpoint,
        revocation_auth_method=revocation,
        issuer=metadata.issuer,
        jwks_uri=metadata.jwks_uri,
    )


# ---------------------------------------------------------------- fetching and the cache

_cache: dict[tuple[str, tuple[str, ...], bool], tuple[float, ServerMetadata]] = {}
_cache_lock = threading.Lock()


def clear_metadata_cache() -> None:
    """Forget every cached metadata document (the next ``from_discovery`` fetches again)."""
    with _cache_lock:
        _cache.clear()


def fetch_metadata(
    issuer_or_metadata_url: str,
    *,
    timeout: float = 5.0,
    allow_insecure_http: bool = False,
    http_client: httpx.Client | None = None,
    max_age: float = METADATA_CACHE_TTL,
) -> ServerMetadata:
    """The server's checked metadata, from the cache if fetched less than ``max_age`` ago.

    ``http_client`` is an ``httpx.Client`` for the request (custom CA, proxy);
    by default a short-lived one verifies TLS and ignores proxy variables,
    like the introspectors' own clients.
    """
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout < math.inf
    ):
        raise ConfigurationError(
            f"timeout={timeout!r} must be a number of seconds above 0, like 5.0."
        )
    issuer, urls = metadata_locations(issuer_or_metadata_url)
    for url in urls:
        check_endpoint_url(url, "issuer_or_metadata_url", allow_insecure_http=allow_insecure_http)
    key = (issuer, urls, allow_insecure_http)  # the issuer exactly as typed: it must match
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and time.monotonic() - cached[0] < max_age:
        return cached[1]
    client = http_client or httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)
    deadline = time.monotonic() + timeout  # one for the whole fetch, both locations included
    try:
        for url in urls:
            status, headers, body = _get(client, url, deadline - time.monotonic())
            if status != 404:
                break
    finally:
        if http_client is None:
            client.close()
    metadata = parse_metadata(
        status,
        headers,
        body,
        url=url,
        expected_issuer=issuer,
        allow_insecure_http=allow_insecure_http,
    )
    with _cache_lock:
        _cache[key] = (time.monotonic(), metadata)
    return metadata


def _get(client: httpx.Client, url: str, timeout: float) -> tuple[int, httpx.Headers, bytes]:
    """GET ``url`` within ``timeout`` seconds: status, headers, at most ``MAX_METADATA_BYTES``."""

    def read(response: httpx.Response) -> tuple[int, httpx.Headers, bytes]:
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > MAX_METADATA_BYTES:
                raise ConfigurationError(
                    f"The document at {url} is larger than {MAX_METADATA_BYTES} bytes; "
                    "it is not a discovery document."
                )
        return response.status_code, response.headers, bytes(body)

    try:
        if timeout <= 0:
            raise httpx.ConnectTimeout("the deadline passed before this location was tried")
        request = client.build_request("GET", url, headers={"Accept": "application/json"})
        return send_with_deadline(client, request, timeout, read)
    except (httpx.HTTPError, OSError) as exc:
        raise transport_error("discovery", url, exc) from None
