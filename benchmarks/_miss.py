"""The cache-miss sections: transports side by side, a cold start, the threaded driver.

``section_miss`` (5): ``Introspector.introspect()`` of fresh tokens on each
transport next to raw clients posting the same form, all measured in one
run in rotating order; ``section_coldstart`` (7): 2,000 new tokens arriving
within one second at a guarded app with the default limits;
``section_sync`` (8): ``SyncIntrospector`` under gunicorn's threaded
worker next to handlers posting with raw sync clients. The dev server runs
in its own process (``_devserver_proc.py``).
"""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import httpx
from _apps import StatusRecorder, asgi_scope, receive, starlette_app
from _rows import Row, dev_server_process, ratio_row
from _support import (
    HERE,
    interleaved_async,
    interleaved_many,
    interleaved_many_sync,
    median,
    ops,
    spread,
)

from genauth_guard import GenAuthGuard, Introspector

Op = Callable[[str], Awaitable[bool]]
FAST_TARGET = 0.50  # Introspector with the extra / raw aiohttp
HTTPX_TARGET = 0.87  # Introspector on httpx / raw httpx (what the library adds to httpx)


def build(transport: str, endpoint: str, options: dict[str, str]) -> Introspector:
    """An ``Introspector`` on ``transport``; ``httpx`` as a user without the extra gets it."""
    if transport == "aiohttp":
        introspector = Introspector(endpoint, **options)  # type: ignore[arg-type]
    else:
        hidden = sys.modules.get("aiohttp")
        sys.modules["aiohttp"] = None  # type: ignore[assignment]
        try:
            introspector = Introspector(endpoint, **options)  # type: ignore[arg-type]
        finally:
            sys.modules["aiohttp"] = hidden  # type: ignore[assignment]
    if not introspector.transport.startswith(transport):
        raise RuntimeError(f"asked for {transport}, got {introspector.transport}")
    return introspector


class Unimportable(importlib.abc.MetaPathFinder):
    """Makes ``import NAME`` fail the way a missing package fails: after a full path scan.

    httpcore imports ``sniffio`` again on every lock it sets up; when sniffio
    is not installed, each of those imports searches ``sys.path`` and fails.
    With ``active`` set, this finder does that search (for a name that is
    not there) and raises, so one process can measure both cases in turn.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.active = False

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if self.active and fullname == self.name:
            importlib.machinery.PathFinder.find_spec(fullname + "_is_not_installed", path)
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@contextmanager
def without(finder: Unimportable) -> Iterator[None]:
    finder.active = True
    saved = sys.modules.pop(finder.name, None)
    try:
        yield
    finally:
        finder.active = False
        if saved is not None:
            sys.modules[finder.name] = saved


async def run_in_flight(op: Op, tokens: Iterator[str], count: int, in_flight: int) -> float:
    """``count`` operations on fresh tokens, ``in_flight`` at a time; ops/s."""
    work = iter([next(tokens) for _ in range(count)])
    failed = 0

    async def worker() -> None:
        nonlocal failed
        for token in work:
            if not await op(token):
                failed += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    rate = count / (time.perf_counter() - start)
    if failed:
        raise RuntimeError(f"{failed} answers were not active: nothing worth timing")
    return rate


@contextmanager
def dev_server(tokens: int) -> Iterator[tuple[dict[str, str], Iterator[str]]]:
    with dev_server_process(tokens) as (config, minted):
        yield config, iter(minted)


# ---------------------------------------------------------------- 5. cache miss


def section_miss(settings: Any) -> list[Any]:
    clients = 6
    needed = clients * (settings.rounds + 1) * sum(settings.miss_ops.values())
    needed += 3 * settings.rounds * settings.miss_ops[1]  # the fastmcp peer row, if it runs
    with dev_server(needed) as (config, tokens):
        return asyncio.run(_miss(settings, config, tokens))


async def _miss(settings: Any, config: dict[str, str], tokens: Iterator[str]) -> list[Any]:
    import aiohttp

    endpoint = config["endpoint"]
    options = {k: config[k] for k in ("client_id", "client_secret", "auth_method")}
    form = {
        "token_type_hint": "access_token",
        "client_id": options["client_id"],
        "client_secret": options["client_secret"],
    }
    fast = build("aiohttp", endpoint, options)
    slow = build("httpx", endpoint, options)
    raw_httpx = httpx.AsyncClient(
        timeout=5.0,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=64),
    )
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), timeout=aiohttp.ClientTimeout(total=5)
    )
    closers: list[Callable[[], Awaitable[object]]] = [
        fast.aclose,
        slow.aclose,
        raw_httpx.aclose,
        session.close,
    ]
    no_sniffio = Unimportable("sniffio")
    sys.meta_path.insert(0, no_sniffio)

    def introspecting(introspector: Introspector) -> Op:
        async def op(token: str) -> bool:
            return (await introspector.introspect(token)).active

        return op

    async def post_httpx(token: str) -> bool:
        response = await raw_httpx.post(endpoint, data={"token": token, **form})
        return response.status_code == 200 and response.json().get("active") is True

    async def post_aiohttp(token: str) -> bool:
        async with session.post(endpoint, data={"token": token, **form}) as response:
            return response.status == 200 and (await response.json()).get("active") is True

    ops_by_name: dict[str, Op] = {
        "raw aiohttp": post_aiohttp,
        "fast": introspecting(fast),
        "httpx": introspecting(slow),
        "raw httpx": post_httpx,
    }
    hidden: dict[str, Unimportable] = {}
    if find_spec("sniffio") is not None:
        ops_by_name["httpx, no sniffio"] = introspecting(slow)
        hidden["httpx, no sniffio"] = no_sniffio
    if find_spec("httpx_aiohttp") is not None:
        from httpx_aiohttp import AiohttpTransport

        adapter_client = httpx.AsyncClient(
            transport=AiohttpTransport(
                client=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
            )
        )
        adapter = Introspector(endpoint, http_client=adapter_client, **options)  # type: ignore[arg-type]
        ops_by_name["adapter"] = introspecting(adapter)
        closers.append(adapter_client.aclose)

    rows = []
    try:
        for in_flight, count in settings.miss_ops.items():

            def measure(name: str, count: int = count, in_flight: int = in_flight) -> Any:
                async def once() -> float:
                    finder = hidden.get(name)
                    if finder is None:
                        return await run_in_flight(ops_by_name[name], tokens, count, in_flight)
                    with without(finder):  # the whole measurement, never half of one
                        return await run_in_flight(ops_by_name[name], tokens, count, in_flight)

                return once

            for name in ops_by_name:  # warm-up: connections, imports
                await measure(name)()
            rates = await interleaved_many(
                {name: measure(name) for name in ops_by_name}, settings.rounds
            )
            rows += miss_rows(Row, rates, in_flight, count)
        if find_spec("fastmcp") is not None:
            rows.append(await fastmcp_row(settings, endpoint, options, tokens, post_httpx))
    finally:
        sys.meta_path.remove(no_sniffio)
        for close in closers:
            await close()
    return rows


CASES = {
    "fast": ("Introspector, aiohttp transport (with the extra: the default)", FAST_TARGET),
    "adapter": ("Introspector, http_client on httpx-aiohttp's AiohttpTransport", None),
    "httpx": ("Introspector, httpx transport (without the extra: before this change)", None),
    "httpx, no sniffio": ("the same, sniffio not installed (as before this change)", None),
    "raw httpx": ("raw httpx.AsyncClient.post", None),
    "raw aiohttp": ("raw aiohttp.ClientSession.post (the baseline)", None),
}


def miss_rows(row: Any, rates: dict[str, list[float]], in_flight: int, count: int) -> list[Any]:
    """One row per client against raw aiohttp, and the httpx transport against raw httpx."""
    base = median(rates["raw aiohttp"])
    rows = []
    for name, (case, target) in CASES.items():
        if name not in rates:
            continue
        value = median(rates[name])
        ratio = value / base
        rows.append(
            row(
                "5 cache miss",
                f"{case}, {in_flight} in flight",
                ops(base),
                ops(value),
                f"{ratio:.2f}x",
                "-" if target is None else f">= {target:.2f}x",
                "-" if target is None else ("yes" if ratio >= target else "no"),
                f"vs raw aiohttp; {count:,} fresh tokens per round; rounds {spread(rates[name])}",
            )
        )
    httpx_ratio = median(rates["httpx"]) / median(rates["raw httpx"])
    rows.append(
        row(
            "5 cache miss",
            f"Introspector, httpx transport vs raw httpx post, {in_flight} in flight",
            ops(median(rates["raw httpx"])),
            ops(median(rates["httpx"])),
            f"{httpx_ratio:.2f}x",
            f">= {HTTPX_TARGET:.2f}x",
            "yes" if httpx_ratio >= HTTPX_TARGET else "no",
            "what the library adds to httpx's own exchange",
        )
    )
    return rows


# ---------------------------------------------------------------- 7. cold start

BURST = 2_000
WITHIN = 1.0  # seconds over which the burst arrives


def section_coldstart(settings: Any) -> list[Any]:
    rounds = 1 if settings.quick else 3
    with dev_server(BURST * rounds * 2) as (config, tokens):
        return asyncio.run(_coldstart(config, tokens, rounds))


class CallsInFlight:
    """Counts the introspection calls on the wire at once, around the runner's exchange.

    Counted in the client: the dev server answers each request without
    awaiting, so on its side requests never overlap, while on the wire as
    many as the pool holds do.
    """

    def __init__(self, introspector: Introspector) -> None:
        self.now = self.peak = 0
        exchange = introspector._exchange

        async def counted(request: httpx.Request) -> Any:
            self.now += 1
            self.peak = max(self.peak, self.now)
            try:
                return await exchange(request)
            finally:
                self.now -= 1

        introspector._exchange = counted  # type: ignore[method-assign]


async def cold_start(
    transport: str, config: dict[str, str], tokens: Sequence[str]
) -> dict[str, Any]:
    """``tokens`` arriving evenly within ``WITHIN`` s at a fresh guarded app, default limits."""
    options = {k: config[k] for k in ("client_id", "client_secret", "auth_method")}
    introspector = build(transport, config["endpoint"], options)
    app = GenAuthGuard(starlette_app(), introspector=introspector)
    recorder = StatusRecorder()
    calls = CallsInFlight(introspector)
    start = time.perf_counter()
    last = start

    async def arrive(index: int, token: str) -> None:
        nonlocal last
        await asyncio.sleep(max(0.0, start + index * WITHIN / len(tokens) - time.perf_counter()))
        await app(asgi_scope(token), receive, recorder)
        last = max(last, time.perf_counter())

    await asyncio.gather(*(arrive(index, token) for index, token in enumerate(tokens)))
    await introspector.aclose()
    return {
        "ok": recorder.statuses.count(200),
        "busy": recorder.statuses.count(503),
        "other": len(recorder.statuses)
        - recorder.statuses.count(200)
        - recorder.statuses.count(503),
        "seconds": last - start,
        "peak": calls.peak,
        "limit": introspector.max_concurrent_introspections,
    }


async def _coldstart(config: dict[str, str], tokens: Iterator[str], rounds: int) -> list[Any]:
    results: dict[str, list[dict[str, Any]]] = {"aiohttp": [], "httpx": []}
    for index in range(rounds):
        order = ["aiohttp", "httpx"] if index % 2 == 0 else ["httpx", "aiohttp"]
        for transport in order:
            burst = [next(tokens) for _ in range(BURST)]
            results[transport].append(await cold_start(transport, config, burst))
    rows = []
    for transport, runs in results.items():
        busy = sum(run["busy"] for run in runs)
        peak = max(run["peak"] for run in runs)
        limit = runs[0]["limit"]
        met = busy == 0 and all(run["other"] == 0 for run in runs) and peak <= limit
        rows.append(
            Row(
                "7 cold start",
                f"{BURST:,} new tokens within {WITHIN:g} s, default limits, {transport} transport",
                "-",
                " / ".join(f"{run['ok']:,}x 200, {run['busy']:,}x 503" for run in runs),
                "-",
                "no 503, calls <= limit" if transport == "aiohttp" else "-",
                ("yes" if met else "no") if transport == "aiohttp" else "-",
                "last answer after "
                + ", ".join(f"{run['seconds']:.2f}" for run in runs)
                + f" s; at most {peak} calls in flight at once (limit {limit})",
            )
        )
    return rows


# ---------------------------------------------------------------- 8. sync miss

SYNC_CLIENTS = tuple(
    kind for kind in ("guard", "httpx", "urllib3") if kind != "urllib3" or find_spec("urllib3")
)  # urllib3 is not a dependency: its row needs `pip install urllib3`
GUNICORN_THREADS = 32


def section_sync(settings: Any) -> list[Any]:
    needed = len(SYNC_CLIENTS) * (settings.rounds + 1) * sum(settings.sync_ops.values())
    with dev_server(needed) as (config, tokens):
        env = {
            **os.environ,
            "GG_BENCH_ENDPOINT": config["endpoint"],
            "GG_BENCH_CLIENT_ID": config["client_id"],
            "GG_BENCH_CLIENT_SECRET": config["client_secret"],
        }
        with gunicorns(env) as urls:
            return _sync(settings, urls, tokens)


@contextmanager
def gunicorns(env: dict[str, str]) -> Iterator[dict[str, str]]:
    """One gunicorn (1 gthread worker, 32 threads) per client kind; yields their URLs."""
    processes: list[subprocess.Popen[bytes]] = []
    urls = {}
    try:
        for kind in SYNC_CLIENTS:
            port = free_port()
            command = [
                sys.executable, "-m", "gunicorn", "-k", "gthread", "-w", "1",
                "--threads", str(GUNICORN_THREADS), "-b", f"127.0.0.1:{port}",
                "--chdir", str(HERE), "--log-level", "warning", "_gunicorn_app:app",
            ]  # fmt: skip
            processes.append(subprocess.Popen(command, env={**env, "GG_BENCH_CLIENT": kind}))
            urls[kind] = f"http://127.0.0.1:{port}/"
        for url in urls.values():
            wait_until_up(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(url: str) -> None:
    host, port = url.split("//")[1].rstrip("/").split(":")
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def sync_load(url: str, tokens: list[str], connections: int) -> float:
    """Requests per second of ``_loadgen.py`` sending each token once; all must be 200."""
    with tempfile.NamedTemporaryFile("w", suffix=".tokens") as file:
        file.write("\n".join(tokens))
        file.flush()
        out = subprocess.run(
            [sys.executable, str(HERE / "_loadgen.py"), "--tokens", file.name, url,
             str(connections), "0"],
            capture_output=True, text=True, check=True, timeout=300,
        ).stdout  # fmt: skip
    result = json.loads(out)
    if result["non_2xx"] or result["errors"] or result["requests"] != len(tokens):
        raise RuntimeError(f"{url}: {result}: not every request answered 200")
    return float(result["requests"] / result["seconds"])


def _sync(settings: Any, urls: dict[str, str], tokens: Iterator[str]) -> list[Any]:
    rows = []
    for connections, count in settings.sync_ops.items():

        def measure(kind: str, count: int = count, connections: int = connections) -> Any:
            return lambda: sync_load(urls[kind], [next(tokens) for _ in range(count)], connections)

        for kind in SYNC_CLIENTS:  # warm-up: imports, pools
            measure(kind)()
        rates = interleaved_many_sync({k: measure(k) for k in SYNC_CLIENTS}, settings.rounds)
        where = f"gunicorn gthread, {GUNICORN_THREADS} threads, {connections} in flight"
        rows.append(
            ratio_row(
                "8 sync miss",
                f"GenAuthGuardWSGI + SyncIntrospector vs a handler posting with httpx ({where})",
                rates["httpx"],
                rates["guard"],
                HTTPX_TARGET,
                f"{count:,} fresh tokens per round",
            )
        )
        if "urllib3" not in rates:
            continue
        value = median(rates["urllib3"]) / median(rates["httpx"])
        rows.append(
            Row(
                "8 sync miss",
                f"a handler posting with raw urllib3 vs raw httpx ({where})",
                ops(median(rates["httpx"])),
                ops(median(rates["urllib3"])),
                f"{value:.2f}x",
                notes=f"rounds: httpx {spread(rates['httpx'])}, urllib3 {spread(rates['urllib3'])}",
            )
        )
    return rows


# ---------------------------------------------------------------- the peer row


@dataclass
class FreshTokenLoad:
    """Measurements of ``count`` operations on fresh tokens, ``in_flight`` at a time."""

    tokens: Iterator[str]
    count: int
    in_flight: int
    inactive: int = 0  # answers that were not active (should stay 0)

    def measure(self, op: Callable[[str], Awaitable[bool]]) -> Callable[[], Awaitable[float]]:
        async def once() -> float:
            result, not_active = await _run_in_flight_counting(
                op, self.tokens, self.count, self.in_flight
            )
            self.inactive += not_active
            return result

        return once


async def _run_in_flight_counting(
    op: Callable[[str], Awaitable[bool]], tokens: Iterator[str], count: int, in_flight: int
) -> tuple[float, int]:
    """``count`` operations on fresh tokens, ``in_flight`` at a time; (ops/s, not active)."""
    batch = [next(tokens) for _ in range(count)]
    work = iter(batch)
    inactive = 0

    async def worker() -> None:
        nonlocal inactive
        for token in work:
            if not await op(token):
                inactive += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    return count / (time.perf_counter() - start), inactive


async def fastmcp_row(
    settings: Any,
    endpoint: str,
    options: dict[str, str],
    tokens: Iterator[str],
    raw_op: Callable[[str], Awaitable[bool]],
) -> Row:
    """Peer: fastmcp's introspection verifier on the same fresh tokens (1 in flight)."""
    case = "peer: fastmcp IntrospectionTokenVerifier.verify_token() vs raw httpx, 1 in flight"
    try:
        from fastmcp.server.auth.providers.introspection import IntrospectionTokenVerifier

        verifier = IntrospectionTokenVerifier(
            introspection_url=endpoint,
            client_id=options["client_id"],
            client_secret=options["client_secret"],
        )
    except Exception as error:  # an API that moved: say so, do not fail the run
        return Row("5 cache miss", case, "-", "-", notes=f"not measured: {error!r}")

    async def peer_op(token: str) -> bool:
        return await verifier.verify_token(token) is not None

    load = FreshTokenLoad(tokens, settings.miss_ops[1], 1)
    raw_rates, peer_rates = await interleaved_async(
        load.measure(raw_op), load.measure(peer_op), settings.rounds
    )
    return ratio_row("5 cache miss", case, raw_rates, peer_rates, 0.87, "peer, for comparison")
