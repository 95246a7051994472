"""Many workers: introspection calls with and without RedisCache, and what a Redis hit costs.

    .venv/bin/python benchmarks/shared_cache.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/shared_cache.py --quick    # smaller, checks the script
    .venv/bin/python benchmarks/shared_cache.py --redis redis://127.0.0.1:6379/0

Needs a redis-server (default: 127.0.0.1:6379) and the ``redis`` extra.
Two sections, one Markdown table each on stdout (progress on stderr):

- ``workers``: gunicorn with 4 ``uvicorn.workers.UvicornWorker`` processes
  serves the guarded hello world (``_workers_app.py``); the same load
  (every token requested ``ROUNDS`` times, shuffled, ``CONCURRENCY`` at
  once, a new connection per request so the kernel spreads them over the
  workers) runs once with each process's own cache and once with a shared
  ``RedisCache``; the dev authorization server counts the introspection
  calls. Three runs each; the table gives every run.
- ``latency``: one introspector in this process; the time of one
  ``introspect()`` answered from the local cache, from Redis (the local
  cache empty, the answer written by another introspector), and by the
  authorization server (no cache at all), as medians and 90th percentiles
  over many tokens. A Redis hit's extra cost is its median minus the local
  hit's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import redis
from _support import HERE, REPO, SCOPES, DevAuthServer, introspector_options, machine_line

from genauth_guard import Introspector, RedisCache, SyncIntrospector

WORKERS = 4
CONCURRENCY = 32


# ---------------------------------------------------------------- workers


@contextmanager
def gunicorn(env: dict[str, str]) -> Iterator[str]:
    """gunicorn -w 4 -k uvicorn.workers.UvicornWorker on a free port; yields its URL."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(WORKERS),
            "-k",
            "uvicorn.workers.UvicornWorker",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "_workers_app:app",
        ],
        cwd=HERE,
        env={**os.environ, **env, "PYTHONPATH": f"{HERE}{os.pathsep}{REPO}"},
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.1)
        time.sleep(1.0)  # every worker up, not only the first
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)


async def load(url: str, tokens: list[str], rounds: int) -> tuple[float, int]:
    """Seconds for the whole load, and how many answers were not 200."""
    requests = [token for token in tokens for _ in range(rounds)]
    random.Random(11).shuffle(requests)
    pending = iter(requests)
    failed = 0
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        for token in pending:
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            failed += response.status_code != 200

    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
        return time.perf_counter() - started, failed


def section_workers(server: Any, endpoint: str, redis_url: str, quick: bool) -> list[str]:
    count, rounds, runs = (40, 5, 1) if quick else (200, 5, 3)
    rows = [
        "| cache | tokens x requests each | run | introspection calls | ideal | requests/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    options = introspector_options(server)
    for label, shared in (("each worker its own", False), ("shared RedisCache", True)):
        for run in range(1, runs + 1):
            tokens = [server.mint(scopes=SCOPES) for _ in range(count)]
            env = {
                "GG_BENCH_ENDPOINT": endpoint,
                "GG_BENCH_CLIENT_ID": options["client_id"],
                "GG_BENCH_CLIENT_SECRET": options["client_secret"],
            }
            if shared:
                env["GG_BENCH_REDIS_URL"] = redis_url
                env["GG_BENCH_REDIS_PREFIX"] = f"gg-bench:{uuid.uuid4().hex[:8]}:"
            print(f"workers: {label}, run {run}", file=sys.stderr)
            with gunicorn(env) as url:
                before = server.introspection_calls
                seconds, failed = asyncio.run(load(url, tokens, rounds))
                calls = server.introspection_calls - before
            assert failed == 0, f"{failed} requests failed"
            requests = count * rounds
            rows.append(
                f"| {label} | {count} x {rounds} | {run} | {calls} | {count} "
                f"| {requests / seconds:,.0f} |"
            )
    return rows


# ---------------------------------------------------------------- latency


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def timed(values: list[float]) -> str:
    return f"{statistics.median(values) * 1e6:,.0f} µs | {percentile(values, 0.9) * 1e6:,.0f} µs"


async def async_latency(
    endpoint: str, options: dict[str, Any], tokens: list[str], url: str
) -> dict[str, list[float]]:
    prefix = f"gg-bench:{uuid.uuid4().hex[:8]}:"
    shared = {**options, "shared_cache": RedisCache(url, prefix=prefix)}
    times: dict[str, list[float]] = {"local hit": [], "Redis hit": [], "server": []}
    async with Introspector(endpoint, **options) as plain:
        for token in tokens:
            started = time.perf_counter()
            await plain.introspect(token)
            times["server"].append(time.perf_counter() - started)
    async with Introspector(endpoint, **shared) as writer:
        for token in tokens:
            await writer.introspect(token)
    async with Introspector(endpoint, **shared) as reader:
        await reader.introspect(tokens[0])  # subscribe, connect: not part of a hit
        reader.clear()
        for token in tokens:
            started = time.perf_counter()
            await reader.introspect(token)
            times["Redis hit"].append(time.perf_counter() - started)
        for token in tokens:
            started = time.perf_counter()
            await reader.introspect(token)
            times["local hit"].append(time.perf_counter() - started)
    return times


def sync_latency(
    endpoint: str, options: dict[str, Any], tokens: list[str], url: str
) -> dict[str, list[float]]:
    prefix = f"gg-bench:{uuid.uuid4().hex[:8]}:"
    shared = {**options, "shared_cache": RedisCache(url, prefix=prefix)}
    times: dict[str, list[float]] = {"local hit": [], "Redis hit": [], "server": []}

    def clock(call: Callable[[str], object], token: str, into: list[float]) -> None:
        started = time.perf_counter()
        call(token)
        into.append(time.perf_counter() - started)

    with SyncIntrospector(endpoint, **options) as plain:
        for token in tokens:
            clock(plain.introspect, token, times["server"])
    with SyncIntrospector(endpoint, **shared) as writer:
        for token in tokens:
            writer.introspect(token)
    with SyncIntrospector(endpoint, **shared) as reader:
        reader.introspect(tokens[0])
        reader.clear()
        for token in tokens:
            clock(reader.introspect, token, times["Redis hit"])
        for token in tokens:
            clock(reader.introspect, token, times["local hit"])
    return times


def section_latency(server: Any, endpoint: str, redis_url: str, quick: bool) -> list[str]:
    count = 100 if quick else 1000
    options = introspector_options(server)
    rows = [
        "| introspector | answered from | median | p90 | median over a local hit |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in ("Introspector", "SyncIntrospector"):
        print(f"latency: {name}", file=sys.stderr)
        tokens = [server.mint(scopes=SCOPES) for _ in range(count)]
        if name == "Introspector":
            times = asyncio.run(async_latency(endpoint, options, tokens, redis_url))
        else:
            times = sync_latency(endpoint, options, tokens, redis_url)
        local = statistics.median(times["local hit"])
        for source in ("local hit", "Redis hit", "server"):
            extra = statistics.median(times[source]) - local
            rows.append(f"| {name} | {source} | {timed(times[source])} | +{extra * 1e6:,.0f} µs |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("workers", "latency"), action="append")
    args = parser.parse_args()
    redis.Redis.from_url(args.redis).ping()
    server = DevAuthServer()
    print(
        machine_line()
        + ", "
        + f"redis-server {redis.Redis.from_url(args.redis).info()['redis_version']}"
    )
    with server.running() as _url:
        endpoint = server.endpoint()
        for section in args.only or ["workers", "latency"]:
            print()
            rows = (section_workers if section == "workers" else section_latency)(
                server, endpoint, args.redis, args.quick
            )
            print("\n".join(rows))
            sys.stdout.flush()
    client = redis.Redis.from_url(args.redis)
    for key in client.scan_iter(match="gg-bench:*", count=1000):
        client.delete(key)


if __name__ == "__main__":
    main()
