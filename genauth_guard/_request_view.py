"""A framework-neutral view of the request, for checks written once for ASGI and WSGI.

Each guard wraps its request (the ASGI scope, the WSGI environ) in a view,
and the policy reads only the view: the bearer token today; the method, the
URL as the client saw it and the client certificate for sender-constrained
tokens (DPoP, mTLS) and per-route rules. Every part is computed on demand,
so the cached path pays only for what it reads: the ``Authorization`` header
and the query string.

Also here: the keys under which the guards leave their results in the
request, so ``require_scopes`` and ``get_token_info`` find them whatever the
framework.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol
from urllib.parse import quote, unquote

from ._bearer import split_credentials

SCOPE_KEY = "token_info"
"""``scope[SCOPE_KEY]``: the ``TokenInfo`` of an accepted ASGI request."""
ENVIRON_KEY = "genauth_guard.token_info"
"""``environ[ENVIRON_KEY]``: the ``TokenInfo`` of an accepted WSGI request."""
REALM_KEY = "genauth_guard.realm"
"""The realm of the guard that saw the request, so later challenges name the same."""
RESOURCE_METADATA_KEY = "genauth_guard.resource_metadata"
"""The RFC 9728 metadata URL of the guard that saw the request, for later challenges."""
STRATEGY_KEY = "genauth_guard.scope_strategy"
"""The scope strategy of the guard that saw the request, for ``require_scopes``."""
OFFER_KEY = "genauth_guard.offer"
"""The challenges (``Offer``) of the guard that let the request in, and the scheme it used."""


class RequestView(Protocol):
    """What the guard's checks may read of a request, whatever the framework."""

    @property
    def method(self) -> str: ...

    @property
    def path(self) -> str:
        """The path the application routes on: below the mount point, decoded."""
        ...

    def authorization(self) -> list[str]:
        """The ``Authorization`` header values as received (``extract_bearer`` splits folds)."""
        ...

    def query_string(self) -> str: ...

    def headers(self, name: str) -> list[str]:
        """Every value of the header ``name`` (lower case), in order."""
        ...

    def url(self) -> str:
        """The URL as the server received it, without query: scheme, Host, full path.

        The path is percent-encoded (as sent where the server kept it) and
        holds the mount point (``root_path``, ``SCRIPT_NAME``): what a DPoP
        proof's ``htu`` signs when no ``public_url`` is configured.
        """
        ...

    def tls_client_certificate(self) -> str | None:
        """The client's leaf certificate (PEM) from the server's TLS layer, if any."""
        ...


_PATH_SAFE = "/:@!$&'()*+,;="
"""Characters a path keeps as they are when a decoded path is encoded again."""


def asgi_full_path(scope: Mapping[str, Any]) -> str:
    """``scope["path"]`` (which holds ``root_path``) percent-encoded, as sent where possible.

    ``raw_path`` keeps the client's own escapes (``%2F`` stays one), but a
    server given ``--root-path`` puts the prefix a proxy stripped into
    ``path`` only: the prefix is encoded again and the rest taken raw.
    """
    path: str = scope["path"]
    raw = scope.get("raw_path")
    if raw:
        sent: str = raw.decode("latin-1").split("?", 1)[0]
        decoded = unquote(sent)
        if decoded == path:
            return sent
        if path.endswith(decoded):
            return quote(path[: len(path) - len(decoded)], safe=_PATH_SAFE) + sent
    return quote(path, safe=_PATH_SAFE, errors="surrogatepass")


def asgi_path(scope: Mapping[str, Any]) -> str:
    """The path the application routes on: ``scope["path"]`` below the mount point.

    Starlette's ``Mount`` (0.33 and later) and ``uvicorn --root-path`` keep
    ``root_path`` inside ``path``; routes, and ``exclude_paths``, are written
    for what follows it, as ``PATH_INFO`` is below ``SCRIPT_NAME`` on WSGI.
    Stripped only at a segment boundary, the way Starlette's router does.
    """
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if not root_path or not path.startswith(root_path):
        return path
    if len(path) == len(root_path):
        return "/"
    return path[len(root_path) :] if path[len(root_path)] == "/" else path


class AsgiRequest:
    """The view of an ASGI ``http`` or ``websocket`` scope."""

    __slots__ = ("scope",)

    def __init__(self, scope: MutableMapping[str, Any]) -> None:
        self.scope = scope

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    @property
    def path(self) -> str:
        return asgi_path(self.scope)

    def authorization(self) -> list[str]:
        return [v.decode("latin-1") for k, v in self.scope["headers"] if k == b"authorization"]

    def query_string(self) -> str:
        return str(self.scope.get("query_string", b"").decode("latin-1"))

    def headers(self, name: str) -> list[str]:
        wanted = name.encode("latin-1")
        return [v.decode("latin-1") for k, v in self.scope["headers"] if k == wanted]

    def url(self) -> str:
        scheme = str(self.scope.get("scheme", "http"))
        scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        host = next(iter(self.headers("host")), None)
        if host is None:
            server = self.scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        return f"{scheme}://{host}{asgi_full_path(self.scope)}"

    def tls_client_certificate(self) -> str | None:
        tls = (self.scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or ()
        return str(chain[0]) if chain else None


def wsgi_path(environ: Mapping[str, Any]) -> str:
    """The path the application routes on, decoded the way werkzeug and Django decode it.

    ``PATH_INFO`` (below ``SCRIPT_NAME``, where the app is mounted) holds the
    URL-decoded bytes as latin-1; routes, and ``exclude_paths``, are UTF-8.
    """
    path = environ.get("PATH_INFO") or "/"
    try:
        return str(path.encode("latin-1").decode("utf-8", "replace"))
    except UnicodeEncodeError:  # a server that already decoded it
        return str(path)


def wsgi_authorization(environ: Mapping[str, Any]) -> list[str]:
    """The request's ``Authorization`` credentials, one per header it sent.

    WSGI has room for one value per header, so servers fold repeated headers
    into one, joined by commas (werkzeug, gunicorn); ``split_credentials``
    splits them again, as it splits every value the ASGI guard sees, so a
    request with two headers is refused as such on both. (A server that
    keeps only the last header hides the first one from every WSGI app;
    nothing here can see it.)
    """
    value = environ.get("HTTP_AUTHORIZATION")
    if not isinstance(value, str):
        return []
    return split_credentials(value)


class WsgiRequest:
    """The view of a WSGI environ."""

    __slots__ = ("environ",)

    def __init__(self, environ: MutableMapping[str, Any]) -> None:
        self.environ = environ

    @property
    def method(self) -> str:
        return str(self.environ.get("REQUEST_METHOD", "GET"))

    @property
    def path(self) -> str:
        return wsgi_path(self.environ)

    def authorization(self) -> list[str]:
        value = self.environ.get("HTTP_AUTHORIZATION")
        return [value] if isinstance(value, str) else []

    def query_string(self) -> str:
        return str(self.environ.get("QUERY_STRING", ""))

    def headers(self, name: str) -> list[str]:
        key = "HTTP_" + name.upper().replace("-", "_")
        if name.lower() == "content-type":
            key = "CONTENT_TYPE"
        value = self.environ.get(key)
        return [] if value is None else [str(value)]

    def url(self) -> str:
        scheme = str(self.environ.get("wsgi.url_scheme", "http"))
        host = self.environ.get("HTTP_HOST")
        if not host:
            name = self.environ.get("SERVER_NAME", "localhost")
            host = f"{name}:{self.environ.get('SERVER_PORT', '80')}"
        script = str(self.environ.get("SCRIPT_NAME", ""))
        path = str(self.environ.get("PATH_INFO", ""))
        # Decoded bytes as latin-1 (PEP 3333): encoded again byte for byte.
        try:
            encoded = quote((script + path).encode("latin-1"), safe=_PATH_SAFE)
        except UnicodeEncodeError:  # a server that already decoded UTF-8
            encoded = quote(script + path, safe=_PATH_SAFE, errors="surrogatepass")
        return f"{scheme}://{host}{encoded}"

    def tls_client_certificate(self) -> str | None:
        value = self.environ.get("SSL_CLIENT_CERT")
        return str(value) if value else None
