"""A keep-alive HTTP/1.1 load generator on asyncio and raw sockets (used when wrk is absent).

``_loadgen.py URL CONNECTIONS SECONDS [HEADER ...]`` keeps CONNECTIONS
connections busy with ``GET`` requests for SECONDS and prints one JSON
line: ``{"requests", "seconds", "non_2xx", "errors"}``. Responses must carry
``Content-Length`` (uvicorn's do for these apps). It runs in its own process
so it never shares a core's interpreter with the server it measures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, request: bytes, deadline: float, counts: dict[str, int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < deadline:
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


async def load(url: str, connections: int, seconds: float, headers: list[str]) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"GET {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", *headers]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    counts = {"requests": 0, "non_2xx": 0, "errors": 0}
    start = time.perf_counter()
    await asyncio.gather(
        *(_connection(host, port, request, start + seconds, counts) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    return {**counts, "seconds": elapsed}


def main() -> None:
    url, connections, seconds, *headers = sys.argv[1:]
    result = asyncio.run(load(url, int(connections), float(seconds), headers))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
