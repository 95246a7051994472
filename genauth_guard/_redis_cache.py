"""``RedisCache``: Redis as the shared second cache level and the channel for invalidations.

Needs redis-py (``pip install 'genauth-guard[redis]'``); importing this
module does not, so ``from genauth_guard import RedisCache`` always works
and only building one without redis-py is an error (naming the extra).

A ``RedisCache`` is configuration; each introspector gets its own *port*
(``async_port`` for ``Introspector``, redis-py's asyncio client;
``sync_port`` for ``SyncIntrospector``, its blocking client) with its own
subscription. What goes into Redis is in ``_redis_format``; what the flow
decides about it in ``_shared_flow``.
"""

from __future__ import annotations

import hmac
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ._redis_format import RedisNames
from ._redis_settings import RedisSettings
from ._shared import AsyncSharedPort, CacheKeys, SyncSharedPort
from .errors import ConfigurationError

DEFAULT_PREFIX = "genauth_guard:"
MIN_SECRET_BYTES = 16
_SCHEMES = ("redis", "rediss", "unix")
_EXTRA_HINT = "pip install 'genauth-guard[redis]'"


def _import_redis() -> Any:
    try:
        import redis
        import redis.asyncio
    except ImportError:
        raise ConfigurationError(
            f"RedisCache needs redis-py, which is not installed: {_EXTRA_HINT}"
        ) from None
    return redis


class RedisCache:
    """The shared cache level on Redis (``shared_cache=RedisCache(...)``).

    ``url_or_client``: a ``redis://``, ``rediss://`` (TLS) or ``unix://``
    URL, or a redis-py client you built (``redis.Redis``,
    ``redis.RedisCluster``, a Sentinel's ``master_for(...)``; their
    ``redis.asyncio`` twins for ``Introspector``), which you then close
    yourself and whose own timeouts and retries apply. ``prefix`` starts
    every key and the channel. ``key_secret`` (str or bytes, 16 bytes or
    more, the same in every process): keys, indexes and messages become
    HMACs and values carry a MAC, so whoever reads Redis cannot test a
    guessed token and whoever writes to it cannot forge an answer.
    ``timeout``: seconds for any one Redis call (a dead Redis costs at most
    that, then is skipped for a while).
    """

    def __init__(
        self,
        url_or_client: Any,
        *,
        prefix: str = DEFAULT_PREFIX,
        key_secret: str | bytes | None = None,
        timeout: float = 0.25,
    ) -> None:
        redis = _import_redis()
        secret = _check_secret(key_secret)
        self.prefix = _check_prefix(prefix)
        self.timeout = _check_timeout(timeout)
        self._keys_secret = None if secret is None else _derive(secret, b"keys")
        mac_key = None if secret is None else _derive(secret, b"values")
        self._asynchronous: bool | None = None
        if isinstance(url_or_client, str):
            self.url: str | None = _check_url(url_or_client, redis)
            client = None
        elif isinstance(url_or_client, redis.asyncio.Redis | redis.asyncio.RedisCluster):
            self.url, client, self._asynchronous = None, url_or_client, True
        elif isinstance(url_or_client, redis.Redis | redis.RedisCluster):
            self.url, client, self._asynchronous = None, url_or_client, False
        else:
            raise ConfigurationError(
                f"RedisCache takes a redis://, rediss:// or unix:// URL or a redis-py client, "
                f"not {type(url_or_client).__name__}."
            )
        self._settings = RedisSettings(
            RedisNames(self.prefix), self.timeout, self.url, client, mac_key
        )

    @property
    def key_secret_set(self) -> bool:
        """Whether keys are HMACs (the secret itself is never shown)."""
        return self._keys_secret is not None

    def cache_keys(self, *bound_to: str) -> CacheKeys:
        return CacheKeys(*bound_to, secret=self._keys_secret)

    def async_port(self) -> AsyncSharedPort:
        if self._asynchronous is False:
            raise ConfigurationError(
                "This RedisCache was given a blocking redis-py client; Introspector needs a "
                "redis.asyncio one (redis.asyncio.Redis(...)), or pass a URL and the "
                "RedisCache builds the right client for each introspector."
            )
        from ._redis_async import AsyncRedisPort

        return AsyncRedisPort(self._settings)

    def sync_port(self) -> SyncSharedPort:
        if self._asynchronous is True:
            raise ConfigurationError(
                "This RedisCache was given a redis.asyncio client; SyncIntrospector needs a "
                "blocking one (redis.Redis(...)), or pass a URL and the RedisCache builds "
                "the right client for each introspector."
            )
        from ._redis_sync import SyncRedisPort

        return SyncRedisPort(self._settings)

    def __repr__(self) -> str:
        target = repr(_redacted(self.url)) if self.url is not None else "<client>"
        return (
            f"RedisCache({target}, prefix={self.prefix!r}, "
            f"key_secret={'<set>' if self.key_secret_set else None}, timeout={self.timeout:g})"
        )


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.digest(secret, b"genauth-guard/" + purpose, "sha256")


def _check_secret(key_secret: object) -> bytes | None:
    if key_secret is None:
        return None
    if isinstance(key_secret, str):
        key_secret = key_secret.encode()
    if not isinstance(key_secret, bytes):
        raise ConfigurationError(
            f"key_secret must be str or bytes, not {type(key_secret).__name__}."
        )
    if len(key_secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"key_secret is too short ({len(key_secret)} bytes): use {MIN_SECRET_BYTES} or "
            "more random bytes, e.g. secrets.token_urlsafe(32), the same in every process."
        )
    return key_secret


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"prefix must be a non-empty str, not {prefix!r}.")
    if len(prefix) > 200 or any(c in prefix for c in "{}") or not prefix.isprintable():
        raise ConfigurationError(
            f"prefix={prefix!r} must be at most 200 printable characters without '{{' or '}}' "
            "(braces would change how Redis Cluster places the keys), e.g. 'genauth_guard:'."
        )
    return prefix


def _check_timeout(timeout: object) -> float:
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= 30
    ):
        raise ConfigurationError(
            f"timeout={timeout!r} must be seconds above 0 and at most 30 for one Redis call, "
            "e.g. 0.25."
        )
    return float(timeout)


def _check_url(url: str, redis: Any) -> str:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in _SCHEMES:
        raise ConfigurationError(
            f"RedisCache URL {_redacted(url)!r} must start with redis://, rediss:// (TLS) or "
            "unix://, e.g. 'redis://127.0.0.1:6379/0'."
        )
    try:
        redis.connection.parse_url(url)
    except ValueError:
        raise ConfigurationError(
            f"RedisCache cannot read the URL {_redacted(url)!r}: expected "
            "redis://[[user]:password@]host[:port][/db], rediss://... or "
            "unix:///path/to/redis.sock[?db=N]."
        ) from None
    return url


def _redacted(url: str | None) -> str:
    """``url`` without its password (for messages and repr)."""
    if url is None:
        return ""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unreadable URL>"
