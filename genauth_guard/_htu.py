"""The URL a DPoP proof signs (``htu``), and the URL of the request it must match.

RFC 9449 4.3 compares ``htu`` with the request's URL, query and fragment
left out, after syntax-based and scheme-based normalisation (RFC 3986
6.2.2 and 6.2.3), so that a client and a server spelling one URL two ways
still agree: scheme and host in lower case, hex digits of percent-escapes
in upper case, escaped unreserved characters decoded, dot segments
removed, a default or empty port dropped, an empty path made ``/``.
``ws``/``wss`` count as ``http``/``https``: a WebSocket handshake is an
HTTP GET. Anything that is not an absolute http(s) URL made of URI
characters normalises to ``None``, which matches nothing.

Pure; ``request_url`` reads a ``RequestView``. ``X-Forwarded-*`` headers are
never read: behind a proxy, ``public_url`` says where clients send requests.
"""

from __future__ import annotations

import functools
import re
from typing import Final
from urllib.parse import quote, urlsplit

from ._request_view import RequestView
from .errors import ConfigurationError

MAX_URL_LENGTH: Final = 4096
_SCHEMES: Final = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_UNRESERVED: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# RFC 3986 2: every character a URI may hold (reserved, unreserved, "%").
_URI_CHARS: Final = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")
_ESCAPE: Final = re.compile(r"%(?:[0-9A-Fa-f]{2})?")
# A path's characters (pchar and "/"), and a reg-name or IP literal host.
_PATH: Final = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*")
_HOST: Final = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]+")
_PATH_SAFE: Final = "/:@!$&'()*+,;="
"""Left as they are when a decoded path is encoded again: the reserved characters of a path."""


def _normalize_escapes(text: str) -> str | None:
    """Upper-case hex digits, unreserved characters decoded; ``None`` for a stray ``%``."""
    if "%" not in text:
        return text
    failed = False

    def one(match: re.Match[str]) -> str:
        nonlocal failed
        escape = match.group(0)
        if len(escape) != 3:
            failed = True
            return escape
        char = chr(int(escape[1:], 16))
        return char if char in _UNRESERVED else escape.upper()

    result = _ESCAPE.sub(one, text)
    return None if failed else result


def remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4: ``/a/./b/../c`` is ``/a/c``."""
    if "." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == ".":
            if last:
                output.append("")
        elif segment == "..":
            if len(output) > 1:
                output.pop()
            if last:
                output.append("")
        else:
            output.append(segment)
    result = "/".join(output)
    return result if result.startswith("/") or not path.startswith("/") else "/" + result


def _authority(netloc: str, scheme: str) -> str | None:
    """``host[:port]`` normalised (lower case, no default port), or ``None`` if malformed."""
    if not netloc or "@" in netloc:  # userinfo has no place in an http(s) URL (RFC 9110 4.2.4)
        return None
    if netloc.startswith("["):
        end = netloc.find("]")
        host, rest = netloc[: end + 1], netloc[end + 1 :]
        if end < 0 or (rest and not rest.startswith(":")):
            return None
        port = rest[1:]
    else:
        host, _, port = netloc.partition(":")
    if not _HOST.fullmatch(host) or (port and not port.isdigit()) or len(port) > 5:
        return None
    normalized = _normalize_escapes(host.lower())
    if normalized is None:
        return None
    if port:
        number = int(port)
        if number > 65535:
            return None
        port = "" if str(number) == _DEFAULT_PORTS[scheme] else str(number)
    return f"{normalized}:{port}" if port else normalized


def normalize_url(url: object) -> str | None:
    """``scheme://authority/path`` of ``url`` normalised for comparison, or ``None``.

    Query and fragment are dropped (RFC 9449 4.3 ignores them). ``None``
    for anything but an absolute http, https, ws or wss URL of at most
    ``MAX_URL_LENGTH`` URI characters: such an ``htu`` matches no request.
    Remembered for the last thousand URLs: a client signs the same few.
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return None
    return _normalize(url)


@functools.lru_cache(maxsize=1024)
def _normalize(url: str) -> str | None:
    if not _URI_CHARS.fullmatch(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None or not url.lower().startswith(parts.scheme.lower() + "://"):
        return None
    authority = _authority(parts.netloc, scheme)
    path = _normalize_escapes(parts.path) if _PATH.fullmatch(parts.path) else None
    if authority is None or path is None:
        return None
    return f"{scheme}://{authority}{remove_dot_segments(path) or '/'}"


def encode_path(path: str) -> str:
    """A decoded path (as ASGI and WSGI apps route on it) percent-encoded again, as UTF-8."""
    return quote(path, safe=_PATH_SAFE, errors="surrogatepass")


def public_base(public_url: str | None) -> str | None:
    """``public_url`` normalised, trailing ``/`` dropped; ``ConfigurationError`` if unusable."""
    if public_url is None:
        return None
    hint = (
        "public_url is the external base URL clients send requests to: "
        "'https://api.example.com', or 'https://example.com/api' when a proxy strips /api."
    )
    if not isinstance(public_url, str):
        raise ConfigurationError(f"public_url={public_url!r} must be a string; {hint}")
    parts = urlsplit(public_url) if _URI_CHARS.fullmatch(public_url) else None
    normalized = normalize_url(public_url) if parts is not None else None
    if (
        parts is None
        or normalized is None
        or parts.scheme.lower() not in ("http", "https")
        or parts.query
        or parts.fragment
        or "?" in public_url
        or "#" in public_url
    ):
        raise ConfigurationError(f"public_url={public_url!r} is not usable; {hint}")
    return normalized.rstrip("/")


def request_url(request: RequestView, base: str | None) -> str | None:
    """The normalised URL of ``request`` that ``htu`` must equal.

    With ``base`` (``public_url``), that base joined with the path the app
    routes on (below ``root_path`` or ``SCRIPT_NAME``); else the URL the
    server received (scheme, ``Host``, full path).
    """
    if base is not None:
        return normalize_url(base + encode_path(request.path))
    return normalize_url(request.url())
