"""What every benchmark script shares: the dev tooling, the machine line, timing helpers.

The dev authorization server and ``serve_in_thread`` are imported here and
nowhere else: they may move to a ``genauth_guard.dev`` subpackage, and then
only ``_DEV_MODULES`` needs to know.
"""

from __future__ import annotations

import gc
import importlib
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from importlib import metadata
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    # Measure this checkout's package: an editable install of another
    # checkout (a worktree's shared venv) would otherwise be imported, here
    # and in every subprocess the benchmarks start (hence PYTHONPATH).
    sys.path.insert(0, str(REPO))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    )

# Newest layout first; the flat modules are where the tooling lives today.
_DEV_MODULES = (
    "genauth_guard.dev",
    "genauth_guard.dev.devserver",
    "genauth_guard.dev.server",
    "genauth_guard.dev.testing",
    "genauth_guard.dev.server",
    "genauth_guard.dev.testing",
)


def _dev_attr(name: str) -> Any:
    for module_name in _DEV_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if hasattr(module, name):
            return getattr(module, name)
    raise ImportError(f"no {name} in any of {', '.join(_DEV_MODULES)}")


DevAuthServer: Any = _dev_attr("DevAuthServer")
serve_in_thread: Any = _dev_attr("serve_in_thread")

SCOPES = ("orders:read", "orders:write")


def introspector_options(server: Any) -> dict[str, Any]:
    """Keyword options that point an (Sync)Introspector at ``server`` (running)."""
    client = server.client
    return {
        "client_id": client.client_id,
        "client_secret": client.client_secret,
        "auth_method": client.auth_method,
    }


# ---------------------------------------------------------------- the machine


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cores() -> str:
    total = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = total
    return f"{usable} cores" if usable == total else f"{usable} of {total} cores"


def versions(*names: str) -> str:
    found = []
    for name in names:
        with suppress(metadata.PackageNotFoundError):
            found.append(f"{name} {metadata.version(name)}")
    return ", ".join(found)


def library_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "genauth_guard"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def machine_line() -> str:
    return (
        f"Machine: {cpu_model()}, {cores()}; Python {platform.python_version()}; "
        + versions(
            "genauth-guard",
            "starlette",
            "fastapi",
            "flask",
            "werkzeug",
            "httpx",
            "httpcore",
            "sniffio",
            "aiohttp",
            "httpx-aiohttp",
            "urllib3",
            "requests",
            "uvicorn",
            "h11",
            "httptools",
            "uvloop",
        )
        + f"; library commit {library_commit()}"
    )


# ---------------------------------------------------------------- timing


def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(
    bare: Callable[[], float], guarded: Callable[[], float], rounds: int
) -> tuple[list[float], list[float]]:
    """``rounds`` measurements of each, alternating which goes first (drift hits both)."""
    bare_results: list[float] = []
    guarded_results: list[float] = []
    for index in range(rounds):
        pair = [(bare, bare_results), (guarded, guarded_results)]
        for measure, results in pair if index % 2 == 0 else reversed(pair):
            gc.collect()
            results.append(measure())
    return bare_results, guarded_results


async def interleaved_async(
    bare: Callable[[], Awaitable[float]],
    guarded: Callable[[], Awaitable[float]],
    rounds: int,
) -> tuple[list[float], list[float]]:
    """``interleaved`` for coroutines, all on the running event loop."""
    bare_results: list[float] = []
    guarded_results: list[float] = []
    for index in range(rounds):
        pair = [(bare, bare_results), (guarded, guarded_results)]
        for measure, results in pair if index % 2 == 0 else reversed(pair):
            gc.collect()
            results.append(await measure())
    return bare_results, guarded_results


async def interleaved_many(
    measures: dict[str, Callable[[], Awaitable[float]]], rounds: int
) -> dict[str, list[float]]:
    """``rounds`` measurements of each, the order rotating every round (drift hits all)."""
    results: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            results[name].append(await measures[name]())
    return results


def interleaved_many_sync(
    measures: dict[str, Callable[[], float]], rounds: int
) -> dict[str, list[float]]:
    """``interleaved_many`` for plain functions (threaded clients)."""
    results: dict[str, list[float]] = {name: [] for name in measures}
    names = list(measures)
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            results[name].append(measures[name]())
    return results


CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.thread_time}
"""The in-process rows' clocks: elapsed time, or the measuring thread's CPU time.

On a machine other processes share, a wall-clock round also counts the time
the benchmark was not running at all; the thread's CPU time does not (what
other processes do to the CPU caches still shows).
"""


def rate(
    call: Callable[[], object],
    seconds: float,
    batch: int = 100,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Calls per second of ``call()`` over at least ``seconds`` of ``clock``."""
    done = 0
    start = clock()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            call()
        done += batch
        now = clock()
        if now >= deadline:
            return done / (now - start)


async def rate_async(
    call: Callable[[], Awaitable[object]],
    seconds: float,
    batch: int = 100,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Awaits per second of ``call()`` over at least ``seconds`` of ``clock``, one at a time."""
    done = 0
    start = clock()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            await call()
        done += batch
        now = clock()
        if now >= deadline:
            return done / (now - start)


@contextmanager
def progress(what: str) -> Iterator[None]:
    """One line on stderr per section, so stdout holds only the report."""
    print(f"... {what}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    print(f"    {what}: {elapsed:.1f} s", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- formatting


def ops(value: float) -> str:
    return f"{value:,.0f} ops/s"


def spread(values: list[float]) -> str:
    """Range of the rounds as a percentage of their median (how noisy the row is)."""
    mid = median(values)
    if not mid:
        return "-"
    return f"±{(max(values) - min(values)) / 2 / mid:.0%}"
