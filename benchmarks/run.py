"""genauth-guard benchmarks: what the guard costs, side by side with the same app bare.

    .venv/bin/python benchmarks/run.py            # everything, a few minutes
    .venv/bin/python benchmarks/run.py --quick    # the same rows, small, < 60 s
    .venv/bin/python benchmarks/run.py --only asgi

Prints a header (machine, versions, settings) and one Markdown table on
stdout; progress goes to stderr. Throughput rows run bare and guarded in
interleaved rounds in one process run and report the median of each; the
ratio is guarded / bare. Nothing here asserts a timing: the ``meets``
column only compares the medians with the targets in README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib.util import find_spec
from typing import Any

from _apps import (
    StatusRecorder,
    asgi_scope,
    asgi_status,
    call_wsgi,
    discard,
    fastapi_app,
    flask_app,
    receive,
    starlette_app,
    wsgi_environ,
)
from _miss import section_coldstart, section_miss, section_sync
from _rows import Row, ratio_row
from _support import (
    CLOCKS,
    HERE,
    SCOPES,
    DevAuthServer,
    interleaved,
    interleaved_async,
    introspector_options,
    machine_line,
    progress,
    rate,
    rate_async,
)

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI

SECTIONS = ("asgi", "wsgi", "served", "calls", "miss", "memory", "coldstart", "sync")


@dataclass(frozen=True)
class Settings:
    """How long each section measures; ``--quick`` shrinks everything but the row set."""

    quick: bool
    rounds: int
    seconds: float  # one in-process measurement (one side, one round)
    served_seconds: int  # one load-generator run
    connections: int
    calls_requests: int
    calls_chunk: int
    miss_ops: dict[int, int]  # in flight -> introspections per measurement
    sync_ops: dict[int, int]  # threads -> introspections per measurement
    memory_entries: int
    loadgen: str
    clock: str = "wall"  # the in-process rows' clock (CLOCKS)

    @classmethod
    def make(
        cls, quick: bool, loadgen: str, clock: str = "wall", rounds: int | None = None
    ) -> Settings:
        settings = cls._sized(quick, loadgen)
        return replace(settings, clock=clock, rounds=rounds or settings.rounds)

    def timer(self) -> Callable[[], float]:
        return CLOCKS[self.clock]

    @classmethod
    def _sized(cls, quick: bool, loadgen: str) -> Settings:
        if quick:
            return cls(
                True,
                3,
                0.15,
                1,
                32,
                2_000,
                50,
                {1: 100, 32: 300},
                {1: 100, 32: 400},
                10_000,
                loadgen,
            )
        return cls(
            False,
            7,
            0.5,
            3,
            32,
            10_000,
            50,
            {1: 300, 32: 1_000},
            {1: 300, 32: 1_500},
            100_000,
            loadgen,
        )


def check_status(what: str, status: int | str) -> None:
    """Refuse to time an app that does not answer 200 (a 401 is faster than a 200)."""
    if str(status).split()[0] != "200":
        raise RuntimeError(f"{what} answered {status}, not 200: nothing worth timing")


# ---------------------------------------------------------------- 1. in-process ASGI


def section_asgi(settings: Settings) -> list[Row]:
    server = DevAuthServer()
    with server.running():
        token = server.mint(scopes=SCOPES)
        return asyncio.run(_asgi(settings, server, token))


async def _asgi(settings: Settings, server: Any, token: str) -> list[Row]:
    rows = []
    scope = asgi_scope(token)
    for name, factory in (("Starlette", starlette_app), ("FastAPI", fastapi_app)):
        introspector = Introspector(server.endpoint(), **introspector_options(server))
        bare = factory()
        guarded = GenAuthGuard(bare, introspector=introspector)
        check_status(f"bare {name}", await asgi_status(bare, scope))
        check_status(f"guarded {name}", await asgi_status(guarded, scope))  # warms the cache
        calls_before = server.introspection_calls

        def measure(app: Any) -> Callable[[], Awaitable[float]]:
            return lambda: rate_async(
                lambda: app(dict(scope), receive, discard), settings.seconds, clock=settings.timer()
            )

        await measure(bare)()  # warm-up
        await measure(guarded)()
        bare_rates, guarded_rates = await interleaved_async(
            measure(bare), measure(guarded), settings.rounds
        )
        calls = server.introspection_calls - calls_before
        rows.append(
            ratio_row(
                "1 ASGI in-process",
                f"{name} hello world, cached token",
                bare_rates,
                guarded_rates,
                0.85,
                f"{calls} introspection calls while timed",
            )
        )
        await introspector.aclose()
    return rows


# ---------------------------------------------------------------- 2. in-process WSGI


def section_wsgi(settings: Settings) -> list[Row]:
    server = DevAuthServer()
    with server.running():
        token = server.mint(scopes=SCOPES)
        environ = wsgi_environ(token)
        with SyncIntrospector(server.endpoint(), **introspector_options(server)) as introspector:
            bare = flask_app()
            guarded = GenAuthGuardWSGI(bare, introspector=introspector)
            check_status("bare Flask", call_wsgi(bare, environ))
            check_status("guarded Flask", call_wsgi(guarded, environ))  # warms the cache
            calls_before = server.introspection_calls

            def measure(app: Any) -> Callable[[], float]:
                return lambda: rate(
                    lambda: call_wsgi(app, environ), settings.seconds, clock=settings.timer()
                )

            measure(bare)()  # warm-up
            measure(guarded)()
            bare_rates, guarded_rates = interleaved(
                measure(bare), measure(guarded), settings.rounds
            )
            calls = server.introspection_calls - calls_before
    return [
        ratio_row(
            "2 WSGI in-process",
            "Flask hello world, SyncIntrospector, cached token",
            bare_rates,
            guarded_rates,
            0.90,
            f"{calls} introspection calls while timed",
        )
    ]


# ---------------------------------------------------------------- 3. served by uvicorn


def loadgen_name(settings: Settings) -> str:
    if settings.loadgen == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    return settings.loadgen


def loadgen_description(settings: Settings) -> str:
    name = loadgen_name(settings)
    if name == "wrk":
        version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
        words = version.split()
        return (
            f"{' '.join(words[:2]) if words else 'wrk'} "
            f"(-t1 -c{settings.connections} -d{settings.served_seconds}s)"
        )
    why = "chosen with --loadgen python" if shutil.which("wrk") else "wrk is not installed"
    return (
        f"benchmarks/_loadgen.py (Python asyncio raw-socket keep-alive, "
        f"{settings.connections} connections, {settings.served_seconds} s; {why})"
    )


@dataclass
class LoadResult:
    rate: float
    requests: int
    non_2xx: int
    errors: int


def run_load(settings: Settings, url: str, token: str) -> LoadResult:
    """One load-generator run against ``url``; same request bytes for bare and guarded."""
    header = f"Authorization: Bearer {token}"
    if loadgen_name(settings) == "wrk":
        command = [
            "wrk",
            "-t1",
            f"-c{settings.connections}",
            f"-d{settings.served_seconds}s",
            "-H",
            header,
            url,
        ]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        total = re.search(r"(\d+) requests in", out)
        non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", out)
        if found is None or total is None:
            raise RuntimeError(f"could not read wrk's output:\n{out}")
        return LoadResult(
            float(found.group(1)),
            int(total.group(1)),
            int(non_2xx.group(1)) if non_2xx else 0,
            sum(int(n) for n in errors.groups()) if errors else 0,
        )
    command = [
        sys.executable,
        str(HERE / "_loadgen.py"),
        url,
        str(settings.connections),
        str(settings.served_seconds),
        header,
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    return LoadResult(
        result["requests"] / result["seconds"],
        result["requests"],
        result["non_2xx"],
        result["errors"],
    )


@contextmanager
def served(kind: str, env: dict[str, str]) -> Iterator[str]:
    """``_served_app.py kind`` in a subprocess; yields its URL; stops it after."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / "_served_app.py"), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        yield f"http://127.0.0.1:{port}/"
    finally:
        assert process.stdin is not None
        process.stdin.close()  # the server's signal to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def get_status(url: str, token: str) -> int:
    """The status of one GET, retried while the server is still starting."""
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    deadline = time.monotonic() + 10
    while True:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return error.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def section_served(settings: Settings) -> list[Row]:
    server = DevAuthServer()
    with server.running():
        token = server.mint(scopes=SCOPES)
        client = introspector_options(server)
        env = {
            **os.environ,
            "GG_BENCH_ENDPOINT": server.endpoint(),
            "GG_BENCH_CLIENT_ID": client["client_id"],
            "GG_BENCH_CLIENT_SECRET": client["client_secret"],
        }
        with served("bare", env) as bare_url, served("guarded", env) as guarded_url:
            check_status("served bare app", get_status(bare_url, token))
            check_status("served guarded app", get_status(guarded_url, token))
            calls_before = server.introspection_calls
            results: dict[str, list[LoadResult]] = {"bare": [], "guarded": []}

            def measure(kind: str, url: str) -> Callable[[], float]:
                def once() -> float:
                    result = run_load(settings, url, token)
                    results[kind].append(result)
                    return result.rate

                return once

            run_load(settings, bare_url, token)  # warm-up
            run_load(settings, guarded_url, token)
            bare_rates, guarded_rates = interleaved(
                measure("bare", bare_url), measure("guarded", guarded_url), settings.rounds
            )
            calls = server.introspection_calls - calls_before
    bad = sum(r.non_2xx + r.errors for kind in results.values() for r in kind)
    total = sum(r.requests for kind in results.values() for r in kind)
    return [
        ratio_row(
            "3 served",
            f"uvicorn, 1 worker, Starlette hello world, cached token ({loadgen_name(settings)})",
            bare_rates,
            guarded_rates,
            0.95,
            f"{total:,} requests, {bad} not 2xx or failed, {calls} introspection calls",
        )
    ]


# ---------------------------------------------------------------- 4. introspection calls


def section_calls(settings: Settings) -> list[Row]:
    server = DevAuthServer()
    with server.running():
        return asyncio.run(_calls(settings, server))


async def _calls(settings: Settings, server: Any) -> list[Row]:
    rows = []
    requests = settings.calls_requests
    chunk = settings.calls_chunk
    for distinct in (1, 10, 1_000):
        introspector = Introspector(server.endpoint(), **introspector_options(server))
        app = GenAuthGuard(starlette_app(), introspector=introspector)
        scopes = [asgi_scope(server.mint(scopes=SCOPES)) for _ in range(distinct)]
        recorder = StatusRecorder()
        before = server.introspection_calls
        start = time.perf_counter()
        for first in range(0, requests, chunk):
            await asyncio.gather(
                *(
                    app(dict(scopes[index % distinct]), receive, recorder)
                    for index in range(first, min(first + chunk, requests))
                )
            )
        elapsed = time.perf_counter() - start
        rows.append(
            calls_row(
                f"{requests:,} requests ({chunk} at a time), {distinct:,} distinct token"
                + ("" if distinct == 1 else "s"),
                distinct,
                server.introspection_calls - before,
                recorder,
                elapsed,
            )
        )
        await introspector.aclose()

    introspector = Introspector(server.endpoint(), **introspector_options(server))
    app = GenAuthGuard(starlette_app(), introspector=introspector)
    scope = asgi_scope(server.mint(scopes=SCOPES))
    recorder = StatusRecorder()
    before = server.introspection_calls
    start = time.perf_counter()
    await asyncio.gather(*(app(dict(scope), receive, recorder) for _ in range(256)))
    elapsed = time.perf_counter() - start
    rows.append(
        calls_row(
            "256 concurrent requests, 1 fresh token",
            1,
            server.introspection_calls - before,
            recorder,
            elapsed,
        )
    )
    await introspector.aclose()
    return rows


def calls_row(case: str, expected: int, calls: int, recorder: StatusRecorder, secs: float) -> Row:
    statuses: dict[int, int] = {}
    for status in recorder.statuses:
        statuses[status] = statuses.get(status, 0) + 1
    answers = ", ".join(f"{count:,}x {status}" for status, count in sorted(statuses.items()))
    return Row(
        "4 introspection calls",
        case,
        f"{expected:,} expected",
        f"{calls:,} call{'' if calls == 1 else 's'}",
        target=f"= {expected:,}",
        meets="yes" if calls == expected else "no",
        notes=f"answers: {answers}; {secs:.2f} s",
    )


# ---------------------------------------------------------------- 5. cache miss


# ---------------------------------------------------------------- 6. memory


def section_memory(settings: Settings) -> list[Row]:
    count = settings.memory_entries
    # Two fresh interpreters side by side: tracemalloc's bookkeeping must not show in RSS.
    processes = {
        mode: subprocess.Popen(
            [sys.executable, str(HERE / "_memory.py"), mode, str(count)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for mode in ("traced", "rss")
    }
    results = {}
    for mode, process in processes.items():
        out, _ = process.communicate()
        if process.returncode:
            raise RuntimeError(f"_memory.py {mode} failed ({process.returncode})")
        results[mode] = json.loads(out)
    rows = []
    for mode, label in (("traced", "tracemalloc bytes"), ("rss", "RSS growth")):
        result = results[mode]
        per_entry = result["per_entry"]
        cached = "all sampled tokens still cached" if result["all_cached"] else "EVICTIONS seen"
        rows.append(
            Row(
                "6 memory",
                f"{label} per cached entry, {count:,} active answers",
                "-",
                f"{per_entry:,.0f} B",
                target="<= 1,000 B",
                meets="yes" if per_entry <= 1_000 else "no",
                notes=f"fresh subprocess, mock endpoint; {cached}",
            )
        )
    return rows


# ---------------------------------------------------------------- the report

RUNNERS: dict[str, Callable[[Settings], list[Row]]] = {
    "asgi": section_asgi,
    "wsgi": section_wsgi,
    "served": section_served,
    "calls": section_calls,
    "miss": section_miss,
    "memory": section_memory,
    "coldstart": section_coldstart,
    "sync": section_sync,
}


def table(rows: list[Row]) -> str:
    head = ("section", "case", "bare / baseline", "guarded", "ratio", "target", "meets", "notes")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = (
            row.section,
            row.case,
            row.baseline,
            row.guarded,
            row.ratio,
            row.target,
            row.meets,
            row.notes,
        )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and requests (< 60 s)")
    parser.add_argument("--only", choices=SECTIONS, action="append", help="run only this section")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator of the served rows (auto: wrk if installed, else Python)",
    )
    parser.add_argument(
        "--clock",
        choices=tuple(CLOCKS),
        default="wall",
        help="clock of the in-process rows (cpu: the measuring thread's CPU time, for a "
        "machine other processes share)",
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds per row (7; --quick: 3)")
    args = parser.parse_args()
    settings = Settings.make(args.quick, args.loadgen, args.clock, args.rounds)
    if settings.loadgen == "wrk" and not shutil.which("wrk"):
        parser.error("--loadgen wrk: wrk is not installed (apt-get install wrk)")
    sections = args.only or list(SECTIONS)
    started = time.perf_counter()
    rows: list[Row] = []
    for name in SECTIONS:
        if name in sections:
            with progress(name):
                rows += RUNNERS[name](settings)
    run = (
        f"Run: {'--quick' if settings.quick else 'full'}, {settings.rounds} interleaved rounds "
        f"per row, medians; in-process measurements {settings.seconds} s each"
        + (" of the thread's CPU time" if settings.clock == "cpu" else "")
    )
    if "served" in sections:
        run += f"; load generator: {loadgen_description(settings)}"
    if "miss" in sections and find_spec("fastmcp") is None:
        run += "; fastmcp not importable: no peer row"
    run += f"; took {time.perf_counter() - started:.0f} s"
    print(machine_line())
    print(run)
    print()
    print(table(rows))


if __name__ == "__main__":
    main()
