"""The report's rows, and the dev server process the cache-miss sections share."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _support import HERE, median, ops, spread


@dataclass(frozen=True)
class Row:
    section: str
    case: str
    baseline: str
    guarded: str
    ratio: str = "-"
    target: str = "-"
    meets: str = "-"
    notes: str = ""


def ratio_row(
    section: str,
    case: str,
    bare: list[float],
    guarded: list[float],
    target: float,
    notes: str = "",
) -> Row:
    bare_median, guarded_median = median(bare), median(guarded)
    ratio = guarded_median / bare_median
    spreads = f"rounds: bare {spread(bare)}, guarded {spread(guarded)}"
    return Row(
        section,
        case,
        ops(bare_median),
        ops(guarded_median),
        f"{ratio:.2f}x",
        f">= {target:.2f}x",
        "yes" if ratio >= target else "no",
        f"{notes}; {spreads}" if notes else spreads,
    )


@contextmanager
def dev_server_process(tokens: int) -> Iterator[tuple[dict[str, str], list[str]]]:
    """The dev server in its own process with ``tokens`` minted; yields (config, tokens)."""
    with tempfile.TemporaryDirectory() as folder:
        tokens_file = Path(folder) / "tokens"
        process = subprocess.Popen(
            [sys.executable, str(HERE / "_devserver_proc.py"), str(tokens), str(tokens_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            config = json.loads(process.stdout.readline())
            yield config, tokens_file.read_text().split("\n")
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
