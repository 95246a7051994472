"""What every Redis port of one ``RedisCache`` shares: settings, client options, reconnects.

Its own module so ``RedisCache`` (which builds the ports) and the ports
(which read the settings) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._redis_format import RedisNames

RECONNECT_FIRST = 0.1
"""Seconds before a lost subscription is tried again (doubling)..."""
RECONNECT_MOST = 2.0
"""...up to this: sharing resumes within seconds of Redis's return."""


@dataclass(frozen=True)
class RedisSettings:
    """What every port of one ``RedisCache`` shares (no secrets in its repr)."""

    names: RedisNames
    timeout: float
    url: str | None
    client: Any = field(repr=False)
    mac_key: bytes | None = field(repr=False)


def client_options(timeout: float) -> dict[str, Any]:
    """Options of the clients a ``RedisCache`` builds from its URL: fail within ``timeout``.

    The ports add ``retry``: one immediate retry on a broken connection (a
    pooled one Redis closed while it restarted), none on a timeout: a slow
    Redis must cost one ``timeout``, not redis-py's default ten retries
    with backoff.
    """
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "socket_keepalive": True,
        "health_check_interval": 30,
    }
