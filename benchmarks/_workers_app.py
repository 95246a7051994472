"""The guarded Starlette hello world for `gunicorn -w N -k uvicorn.workers.UvicornWorker`.

Configured from the environment, like ``_served_app.py``: ``GG_BENCH_ENDPOINT``,
``GG_BENCH_CLIENT_ID``, ``GG_BENCH_CLIENT_SECRET``; with ``GG_BENCH_REDIS_URL``
(and ``GG_BENCH_REDIS_PREFIX``) the introspector shares a ``RedisCache``.
"""

from __future__ import annotations

import os
from typing import Any

from _apps import starlette_app

from genauth_guard import GenAuthGuard, Introspector, RedisCache


def __getattr__(name: str) -> Any:
    """``app``, built on first access in each worker."""
    if name != "app":
        raise AttributeError(name)
    redis_url = os.environ.get("GG_BENCH_REDIS_URL")
    shared = (
        RedisCache(redis_url, prefix=os.environ.get("GG_BENCH_REDIS_PREFIX", "genauth_guard:"))
        if redis_url
        else None
    )
    introspector = Introspector(
        os.environ["GG_BENCH_ENDPOINT"],
        client_id=os.environ["GG_BENCH_CLIENT_ID"],
        client_secret=os.environ["GG_BENCH_CLIENT_SECRET"],
        shared_cache=shared,
    )
    return GenAuthGuard(starlette_app(), introspector=introspector)
