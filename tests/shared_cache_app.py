"""An ASGI app behind GenAuthGuard, configured from the environment, for gunicorn workers.

``GG_ENDPOINT``, ``GG_CLIENT_ID``, ``GG_CLIENT_SECRET``; with ``GG_REDIS_URL``
(and ``GG_REDIS_PREFIX``) its introspector shares a ``RedisCache``. ``/``
answers the caller's identity and the worker's pid; ``/health`` is open.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, RedisCache, get_token_info


async def whoami(request: Request) -> JSONResponse:
    info = get_token_info(request)
    return JSONResponse({"sub": info.sub if info else None, "pid": os.getpid()})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def build() -> GenAuthGuard:
    redis_url = os.environ.get("GG_REDIS_URL")
    shared = (
        RedisCache(redis_url, prefix=os.environ.get("GG_REDIS_PREFIX", "genauth_guard:"))
        if redis_url
        else None
    )
    introspector = Introspector(
        os.environ["GG_ENDPOINT"],
        client_id=os.environ["GG_CLIENT_ID"],
        client_secret=os.environ["GG_CLIENT_SECRET"],
        shared_cache=shared,
    )
    app = Starlette(routes=[Route("/", whoami), Route("/health", health)])
    return GenAuthGuard(app, introspector=introspector, exclude_paths=("/health",))


def __getattr__(name: str) -> GenAuthGuard:
    """``app``, built on first access (importing the module needs no environment)."""
    if name == "app":
        return build()
    raise AttributeError(name)
