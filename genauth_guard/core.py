"""What the async and sync introspectors share: options, cache, request and answer.

The drivers (``Introspector``, ``SyncIntrospector``) only add the I/O: send
the request this class builds, read at most ``max_response_bytes`` of the
answer, hand it back to ``_accept``. Single flight lives in the drivers,
because waiting is the one thing asyncio and threads do differently.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Required, TypedDict

import httpx

from ._logging import FailureLog
from .bearer import DEFAULT_MAX_TOKEN_LENGTH
from .cache import TokenCache, cache_key, key_hint, namespace
from .client_auth import check_auth_method, check_client_credentials
from .endpoint import check_endpoint_url
from .errors import ConfigurationError, IntrospectionError
from .protocol import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ClientCredentials,
    body_too_large,
    parse_introspection_response,
    token_request,
    transport_error,
)
from .token_info import TokenInfo


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{name}={value!r} must be a number of seconds, 0 or more.")
    return float(value)


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{name}={value!r} must be a whole number, 1 or more.")
    return value


class IntrospectorOptions(TypedDict, total=False):
    """The keyword options of ``Introspector`` and ``SyncIntrospector`` (typed once)."""

    client_id: Required[str]
    client_secret: str | None
    auth_method: str
    cache_ttl: float
    negative_cache_ttl: float
    cache_maxsize: int
    timeout: float
    token_type_hint: str | None
    leeway: float
    max_response_bytes: int
    max_token_length: int
    allow_insecure_http: bool


class IntrospectorBase:
    """Options and protocol shared by ``Introspector`` and ``SyncIntrospector``.

    ``introspection_endpoint``: the RFC 7662 endpoint URL (https, or http on
    loopback). ``client_id``/``client_secret``/``auth_method``: the resource
    server's credentials (``client_secret_post``, ``client_secret_basic`` or
    ``none``). ``cache_ttl``: longest life of an active answer (never past
    its ``exp``); ``negative_cache_ttl``: life of an inactive one (0: none);
    ``cache_maxsize``: entries, least recently used go first. ``timeout``:
    seconds for one call, connect to last byte. ``token_type_hint``: sent
    with each request (``None`` to omit). ``leeway``: clock skew allowed on
    ``exp``/``nbf``. ``max_response_bytes``/``max_token_length``: bounds on
    what is read and what is sent. ``allow_insecure_http``: permit http://
    to a host that is not loopback.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        client_id: str,
        client_secret: str | None = None,
        auth_method: str = "client_secret_post",
        cache_ttl: float = 300.0,
        negative_cache_ttl: float = 10.0,
        cache_maxsize: int = 10_000,
        timeout: float = 5.0,
        token_type_hint: str | None = "access_token",
        leeway: float = 0.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        allow_insecure_http: bool = False,
    ) -> None:
        self.introspection_endpoint = check_endpoint_url(
            introspection_endpoint,
            "introspection_endpoint",
            allow_insecure_http=allow_insecure_http,
        )
        method = check_auth_method(auth_method)
        check_client_credentials(method, client_id, client_secret, option="auth_method")
        self.credentials = ClientCredentials(client_id, client_secret, method)
        self.allow_insecure_http = allow_insecure_http
        self.token_type_hint = token_type_hint or None
        self.timeout = _non_negative("timeout", timeout)
        if self.timeout == 0:
            raise ConfigurationError("timeout=0 would fail every call; give seconds, e.g. 5.0.")
        self.leeway = _non_negative("leeway", leeway)
        self.max_response_bytes = _positive_int("max_response_bytes", max_response_bytes)
        self.max_token_length = _positive_int("max_token_length", max_token_length)
        self.cache = TokenCache(
            maxsize=_positive_int("cache_maxsize", cache_maxsize),
            ttl=_non_negative("cache_ttl", cache_ttl),
            negative_ttl=_non_negative("negative_cache_ttl", negative_cache_ttl),
            leeway=self.leeway,
        )
        self._key_prefix = namespace(self.introspection_endpoint, client_id)
        self._failures = FailureLog()
        self._timeout_extension = httpx.Timeout(self.timeout).as_dict()

    @property
    def client_id(self) -> str:
        return self.credentials.client_id

    @property
    def auth_method(self) -> str:
        return self.credentials.auth_method

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.introspection_endpoint!r}, "
            f"client_id={self.client_id!r}, auth_method={self.auth_method!r})"
        )

    # ------------------------------------------------------------ cache

    def _key(self, token: str) -> bytes:
        return cache_key(self._key_prefix, token)

    def invalidate(self, token: str) -> None:
        """Forget the cached answer for ``token`` (the next request asks the server)."""
        self.cache.discard(self._key(token))

    def clear(self) -> None:
        """Forget every cached answer."""
        self.cache.clear()

    # ------------------------------------------------------------ protocol

    def _check_token(self, token: str) -> None:
        if not isinstance(token, str) or not token:
            raise TypeError("introspect() takes the access token as a non-empty str")

    def _request(self, token: str) -> httpx.Request:
        request = token_request(
            self.introspection_endpoint, self.credentials, token, self.token_type_hint
        )
        request.extensions["timeout"] = self._timeout_extension
        return request

    def _body_limit_exceeded(self, headers: Mapping[str, str], received: int) -> bool:
        if received > self.max_response_bytes:
            return True
        length = headers.get("content-length", "")
        return length.isdigit() and int(length) > self.max_response_bytes

    def _too_large(self, key: bytes) -> IntrospectionError:
        return self._failed(key, body_too_large(self.max_response_bytes))

    def _transport_failed(self, key: bytes, exc: Exception) -> IntrospectionError:
        return self._failed(key, transport_error("introspection", self.introspection_endpoint, exc))

    def _failed(self, key: bytes, error: IntrospectionError) -> IntrospectionError:
        self._failures.failure(str(error), key_hint(key))
        return error

    def _accept(
        self, key: bytes, status: int, headers: Mapping[str, str], body: bytes
    ) -> TokenInfo:
        """Parse an answer, cache it if it is one, and return it (or raise the failure)."""
        try:
            info = parse_introspection_response(
                status, headers, body, now=time.time(), leeway=self.leeway
            )
        except IntrospectionError as error:
            raise self._failed(key, error) from None
        self._failures.success()
        self.cache.put(key, info)
        return info

    def _describe(self) -> dict[str, Any]:
        """Settings without secrets, for the CLI and diagnostics."""
        return {
            "introspection_endpoint": self.introspection_endpoint,
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "cache_ttl": self.cache.ttl,
            "negative_cache_ttl": self.cache.negative_ttl,
            "timeout": self.timeout,
        }
