"""What the async and sync introspectors share: options, cache, request and answer.

The drivers (``Introspector``, ``SyncIntrospector``) only add the I/O: send
the request this class builds, feed the answer to a ``BoundedBody``, hand
it to ``_parse``; on a failure ask ``_judge`` whether to retry; finally
``_accept`` the answer or ``_give_up``. Single flight, the concurrency
bound and the sleeps live in the drivers, because waiting is the one thing
asyncio and threads do differently; every decision lives here or in the
pure modules (``protocol``, ``resilience``, ``validation``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH, check_token
from ._cache import TokenCache, cache_key, key_hint, namespace
from ._client_auth import check_auth_method, check_client_credentials
from ._factories import IntrospectorFactories
from ._logging import FailureLog, stale_served, token_rejected
from ._protocol import (
    DEFAULT_MAX_RESPONSE_BYTES,
    BoundedBody,
    ClientCredentials,
    check_revocation_response,
    parse_introspection_response,
    token_request,
    transport_error,
    unexpected_failure,
)
from ._resilience import CircuitBreaker, RetryPolicy, is_connection_failure, too_busy
from ._settings import check_endpoint_url
from ._token_info import TokenInfo
from ._validation import ClaimRules
from .errors import (
    AuthorizationServerUnavailable,
    ConfigurationError,
    IntrospectionError,
    InvalidIntrospectionResponse,
    RevocationError,
)


def _non_negative(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{name}={value!r} must be a number of seconds, 0 or more.")
    return float(value)


def _positive_int(name: str, value: int, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigurationError(f"{name}={value!r} must be a whole number, {least} or more.")
    return value


class IntrospectorBase(IntrospectorFactories):
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

    Hardening (README "Security"): at most ``max_concurrent_introspections``
    calls run at once (calls, not waiting requests); a request waits up to
    ``queue_timeout`` seconds for a slot, then fails (503). ``retries``
    extra attempts follow a connection failure or a 502/503/504, after
    ``retry_backoff`` seconds (jittered, doubling), so one introspection
    lasts at most ``(retries + 1) * timeout`` plus the backoff.
    ``circuit_breaker_threshold`` failures in a row (0: never) make every
    call fail at once for ``circuit_breaker_cooldown`` seconds.
    ``serve_stale_on_error``: while the server is unavailable, answer from
    an active cached answer past ``cache_ttl`` but not past its ``exp``.
    ``audience``, ``issuer``, ``allowed_client_ids``, ``token_type``:
    claim rules (``validation.ClaimRules``); an answer breaking one is
    inactive, and cached as such.
    """

    def __init__(
        self,
        introspection_endpoint: str,
        *,
        client_id: str,
        client_secret: str | None = None,
        auth_method: str = "client_secret_post",
        revocation_endpoint: str | None = None,
        revocation_auth_method: str | None = None,
        cache_ttl: float = 300.0,
        negative_cache_ttl: float = 10.0,
        cache_maxsize: int = 10_000,
        timeout: float = 5.0,
        token_type_hint: str | None = "access_token",
        leeway: float = 0.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        allow_insecure_http: bool = False,
        max_concurrent_introspections: int = 64,
        queue_timeout: float = 1.0,
        retries: int = 1,
        retry_backoff: float = 0.1,
        circuit_breaker_threshold: int = 5,
        circuit_breaker_cooldown: float = 5.0,
        serve_stale_on_error: bool = False,
        audience: str | Iterable[str] | None = None,
        issuer: str | Iterable[str] | None = None,
        allowed_client_ids: Iterable[str] | None = None,
        token_type: str | None = None,
    ) -> None:
        self.introspection_endpoint = check_endpoint_url(
            introspection_endpoint,
            "introspection_endpoint",
            allow_insecure_http=allow_insecure_http,
        )
        method = check_auth_method(auth_method)
        check_client_credentials(method, client_id, client_secret, option="auth_method")
        self.credentials = ClientCredentials(client_id, client_secret, method)
        self._init_revocation(revocation_endpoint, revocation_auth_method, allow_insecure_http)
        self.allow_insecure_http = allow_insecure_http
        self.token_type_hint = token_type_hint or None
        self.timeout = _non_negative("timeout", timeout)
        if self.timeout == 0:
            raise ConfigurationError("timeout=0 would fail every call; give seconds, e.g. 5.0.")
        self.leeway = _non_negative("leeway", leeway)
        self.max_response_bytes = _positive_int("max_response_bytes", max_response_bytes)
        self.max_token_length = _positive_int("max_token_length", max_token_length)
        self.serve_stale_on_error = bool(serve_stale_on_error)
        self.cache = TokenCache(
            maxsize=_positive_int("cache_maxsize", cache_maxsize),
            ttl=_non_negative("cache_ttl", cache_ttl),
            negative_ttl=_non_negative("negative_cache_ttl", negative_cache_ttl),
            leeway=self.leeway,
            keep_stale=self.serve_stale_on_error,
        )
        self.max_concurrent_introspections = _positive_int(
            "max_concurrent_introspections", max_concurrent_introspections
        )
        self.queue_timeout = _non_negative("queue_timeout", queue_timeout)
        self.retry = RetryPolicy(
            _positive_int("retries", retries, least=0),
            _non_negative("retry_backoff", retry_backoff),
        )
        self.breaker = CircuitBreaker(
            _positive_int("circuit_breaker_threshold", circuit_breaker_threshold, least=0),
            _non_negative("circuit_breaker_cooldown", circuit_breaker_cooldown),
        )
        self.rules = ClaimRules.from_options(
            audience=audience,
            issuer=issuer,
            allowed_client_ids=allowed_client_ids,
            token_type=token_type,
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

    # ------------------------------------------------------------ revocation (RFC 7009)
    # The drivers' ``revoke`` sends ``_revocation_request`` and hands the answer
    # to ``_confirm_revocation``; everything else about revocation is here.

    def _init_revocation(
        self, endpoint: str | None, auth_method: str | None, allow_insecure_http: bool
    ) -> None:
        """Revocation settings: its own endpoint and method, the same client and secret."""
        self.revocation_endpoint = (
            None
            if endpoint is None
            else check_endpoint_url(
                endpoint, "revocation_endpoint", allow_insecure_http=allow_insecure_http
            )
        )
        credentials = self.credentials
        method = credentials.auth_method
        if auth_method is not None:
            method = check_auth_method(auth_method, "revocation_auth_method")
        if self.revocation_endpoint is not None:
            check_client_credentials(
                method,
                credentials.client_id,
                credentials.client_secret,
                option="revocation_auth_method",
            )
        self.revocation_credentials = ClientCredentials(
            credentials.client_id, credentials.client_secret, method
        )

    def _revocation_request(self, token: str, token_type_hint: str | None) -> httpx.Request:
        if not isinstance(token, str) or not token:
            raise TypeError("revoke() takes the token as a non-empty str")
        if self.revocation_endpoint is None:
            raise ConfigurationError(
                "revoke() needs a revocation endpoint: pass revocation_endpoint= to the "
                "constructor, or build the introspector with from_genauth() or "
                "from_discovery(), which know it."
            )
        request = token_request(
            self.revocation_endpoint, self.revocation_credentials, token, token_type_hint
        )
        request.extensions["timeout"] = self._timeout_extension
        return request

    def _revocation_failed(self, exc: Exception) -> RevocationError:
        error = (
            exc
            if isinstance(exc, IntrospectionError)
            else transport_error("revocation", self.revocation_endpoint or "", exc)
        )
        return RevocationError(f"The token may not be revoked: {error}")

    def _confirm_revocation(
        self, token: str, status: int, headers: Mapping[str, str], body: bytes
    ) -> None:
        """Raise ``RevocationError`` unless the server confirmed; then forget the answer."""
        check_revocation_response(status, headers, body[: self.max_response_bytes])
        self.invalidate(token)

    # ------------------------------------------------------------ protocol

    def _lookup(self, token: str) -> tuple[bytes, TokenInfo | None]:
        """``token``'s cache key and cached answer (``None`` on a miss).

        On a miss, what cannot be a bearer token is refused before any call
        (``InvalidRequest``: RFC 6750 b64token, ``max_token_length``). The
        middlewares check the same when they extract the token; this covers
        direct callers, and costs a hit only a type check.
        """
        if not isinstance(token, str) or not token:
            raise TypeError("introspect() takes the access token as a non-empty str")
        key = self._key(token)
        cached = self.cache.get(key)
        if cached is None:
            check_token(token, self.max_token_length)
        return key, cached

    def _request(self, token: str) -> httpx.Request:
        request = token_request(
            self.introspection_endpoint, self.credentials, token, self.token_type_hint
        )
        request.extensions["timeout"] = self._timeout_extension
        return request

    def _failed(self, key: bytes, error: IntrospectionError) -> IntrospectionError:
        self._failures.failure(str(error), key_hint(key), error.reason)
        return error

    # ------------------------------------------------------------ one introspection, decided once

    def _http_limits(self) -> httpx.Limits:
        """Pool limits of the clients we create: a connection per allowed call."""
        return httpx.Limits(max_connections=self.max_concurrent_introspections)

    def _body(self, response: httpx.Response) -> BoundedBody:
        """The reader of ``response``'s body (raises if it is announced too large).

        A transport that read the body already (``httpx.MockTransport``, test
        doubles) hands it over decoded and whole; it is only bounded then.
        """
        if not response.is_stream_consumed:
            return BoundedBody(response.status_code, response.headers, self.max_response_bytes)
        body = BoundedBody(response.status_code, {}, self.max_response_bytes)
        body.feed(response.content)
        return body

    def _parse(self, key: bytes, status: int, headers: Mapping[str, str], body: bytes) -> TokenInfo:
        """The answer as ``TokenInfo`` with the claim rules applied; raises (unlogged) if none."""
        info = parse_introspection_response(
            status, headers, body, now=time.time(), leeway=self.leeway
        )
        info, broken_rule = self.rules.apply(info)
        if broken_rule is not None:
            token_rejected(key_hint(key), broken_rule)
        return info

    def _judge(
        self, key: bytes, exc: Exception, attempt: int
    ) -> tuple[IntrospectionError, float | None]:
        """The failure ``exc`` amounts to, and the seconds to wait before a retry (or None)."""
        connection_failed = False
        if isinstance(exc, IntrospectionError):
            error = exc
        elif isinstance(exc, httpx.HTTPError | TimeoutError | OSError):
            connection_failed = is_connection_failure(exc)
            error = transport_error(
                "introspection",
                self.introspection_endpoint,
                exc,
                connection_failed=connection_failed,
            )
        else:  # an answer odd enough to break something: still no answer, never a 500
            error = unexpected_failure("introspection", exc)
        delay = self.retry.delay(attempt, error, connection_failed=connection_failed)
        if delay is not None:
            self._failures.retrying(str(error), key_hint(key), attempt, delay)
        return error, delay

    def _no_slot(self) -> IntrospectionError:
        """The failure for a request that waited ``queue_timeout`` for a call slot in vain."""
        self.breaker.release()
        return too_busy(self.max_concurrent_introspections, self.queue_timeout)

    def _accept(self, key: bytes, info: TokenInfo) -> TokenInfo:
        """Cache an answer (the cache rule says for how long) and return it."""
        self._failures.success()
        self.cache.put(key, info)
        return info

    def _give_up(self, key: bytes, error: IntrospectionError) -> TokenInfo:
        """Log the failure; return a stale answer if allowed and there is one, else raise.

        Stale answers stand in only while the server is unavailable or
        talking nonsense, never when it refused us (4xx): that needs fixing.
        """
        self._failed(key, error)
        if self.serve_stale_on_error and isinstance(
            error, AuthorizationServerUnavailable | InvalidIntrospectionResponse
        ):
            stale = self.cache.get_stale(key)
            if stale is not None:
                stale_served(key_hint(key))
                return stale
        raise error

    def _describe(self) -> dict[str, Any]:
        """Settings without secrets, for the CLI and diagnostics."""
        return {
            "introspection_endpoint": self.introspection_endpoint,
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "revocation_endpoint": self.revocation_endpoint,
            "revocation_auth_method": self.revocation_credentials.auth_method,
            "cache_ttl": self.cache.ttl,
            "negative_cache_ttl": self.cache.negative_ttl,
            "timeout": self.timeout,
            "max_concurrent_introspections": self.max_concurrent_introspections,
            "queue_timeout": self.queue_timeout,
            "retries": self.retry.retries,
            "circuit_breaker_threshold": self.breaker.threshold,
            "serve_stale_on_error": self.serve_stale_on_error,
        }
