"""A keep-alive HTTP/1.1 load generator on asyncio and raw sockets (used when wrk is absent).

``_loadgen.py URL CONNECTIONS SECONDS [HEADER ...]`` keeps CONNECTIONS
connections busy with ``GET`` requests for SECONDS and prints one JSON
line: ``{"requests", "seconds", "non_2xx", "errors"}``. With
``--tokens FILE`` as the first argument, every request instead carries the
next bearer token of FILE (one a line; every request a cache miss) and the
run ends when they are used up (SECONDS is then ignored). Responses must carry
``Content-Length`` (uvicorn's do for these apps). It runs in its own process
so it never shares a core's interpreter with the server it measures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

Requests = Iterator[bytes]


async def _connection(
    host: str, port: int, requests: Requests, deadline: float, counts: dict[str, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for request in requests:
            if time.perf_counter() >= deadline:
                break
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status = int(lines[0].split(b" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            counts["requests"] += 1
            if not 200 <= status < 300:
                counts["non_2xx"] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError):
        counts["errors"] += 1
    finally:
        writer.close()


def _request(parts: SplitResult, headers: list[str]) -> bytes:
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def load(
    url: str, connections: int, seconds: float, headers: list[str], tokens: list[str] | None = None
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    requests: Requests
    if tokens is None:
        requests = itertools.repeat(_request(parts, headers))
    else:  # shared by all connections: each token is sent once
        requests = (_request(parts, [*headers, f"Authorization: Bearer {t}"]) for t in tokens)
        seconds = math.inf
    counts = {"requests": 0, "non_2xx": 0, "errors": 0}
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(host, port, requests, start + seconds, counts) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    return {**counts, "seconds": elapsed}


def main() -> None:
    args = sys.argv[1:]
    tokens = None
    if args[0] == "--tokens":
        tokens = Path(args[1]).read_text().split()
        args = args[2:]
    url, connections, seconds, *headers = args
    result = asyncio.run(load(url, int(connections), float(seconds), headers, tokens))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
