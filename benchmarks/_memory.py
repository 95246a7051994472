"""Memory of one cached answer, measured in a fresh interpreter.

``_memory.py rss|traced COUNT`` fills an ``Introspector``'s cache with COUNT
active answers and prints one JSON line with the growth per entry:

- ``rss``: resident set growth, tracemalloc off (what the operating system
  sees, allocator slack included);
- ``traced``: bytes still allocated (tracemalloc on during the fill only).

Run the two in separate processes (tracemalloc's own bookkeeping would show
in the resident set); ``run.py`` runs them side by side.

The introspection endpoint is an ``httpx.MockTransport`` answering every token
as active, shaped like the dev server's (and GenAuth's) answer with its own
``jti``: the cache entry is what is measured, not the network, and 100,000
real round trips would only make the run longer. The answer goes through
the same parsing as one read from a socket.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import os
import secrets
import sys
import time
import tracemalloc

# This checkout's package, not the one a shared venv may have installed from elsewhere.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx

from genauth_guard import Introspector

ENDPOINT = "http://127.0.0.1:9/oidc/token/introspection"


class Endpoint:
    """Answers active for any token; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._jti = itertools.count()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        now = int(time.time())
        answer = {
            "active": True,
            "client_id": "dev-client",
            "exp": now + 3600,
            "iat": now,
            "iss": "http://127.0.0.1:8765",
            "jti": f"{next(self._jti):016x}",
            "scope": "orders:read orders:write",
            "token_type": "Bearer",
            "sub": "user-1",
        }
        return httpx.Response(
            200, content=json.dumps(answer).encode(), headers={"content-type": "application/json"}
        )


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def fill(count: int) -> tuple[Introspector, Endpoint, list[str]]:
    """An introspector with ``count`` cached answers, and a few of their tokens to check."""
    endpoint = Endpoint()
    client = httpx.AsyncClient(transport=httpx.MockTransport(endpoint))
    introspector = Introspector(
        ENDPOINT,
        client_id="dev-client",
        client_secret="bench-secret",
        cache_maxsize=count + 1,
        http_client=client,
    )
    sample: list[str] = []
    for index in range(count):
        token = secrets.token_urlsafe(32)
        await introspector.introspect(token)
        if index % (count // 100 or 1) == 0:
            sample.append(token)
    return introspector, endpoint, sample


async def check(introspector: Introspector, endpoint: Endpoint, sample: list[str]) -> bool:
    """True when every sampled token is still answered from the cache."""
    before = endpoint.calls
    for token in sample:
        await introspector.introspect(token)
    return endpoint.calls == before


async def main(mode: str, count: int) -> None:
    kept = [await fill(1_000)]  # imports, pools, interned strings: not per entry
    gc.collect()
    if mode == "traced":
        tracemalloc.start()
        gc.collect()
    before = tracemalloc.get_traced_memory()[0] if mode == "traced" else rss()
    kept.append(await fill(count))
    gc.collect()
    after = tracemalloc.get_traced_memory()[0] if mode == "traced" else rss()
    tracemalloc.stop()
    cached = await check(*kept[1])
    print(
        json.dumps(
            {
                "mode": mode,
                "entries": count,
                "per_entry": (after - before) / count,
                "all_cached": cached,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("rss", "traced"):
        raise SystemExit(f"usage: {sys.argv[0]} rss|traced COUNT")
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
