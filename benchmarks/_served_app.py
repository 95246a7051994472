"""One uvicorn worker serving the Starlette hello world, bare or behind the guard.

Run by ``run.py`` (section ``served``) as a subprocess:
``_served_app.py bare|guarded``. It binds 127.0.0.1 on a free port, prints
the port on stdout, and serves until its stdin closes (so it never outlives
the benchmark). The guarded app reads the introspection endpoint and client
credentials from ``GG_BENCH_ENDPOINT``, ``GG_BENCH_CLIENT_ID`` and
``GG_BENCH_CLIENT_SECRET``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

# This checkout's package, not the one a shared venv may have installed from elsewhere.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import uvicorn
from _apps import starlette_app

from genauth_guard import GenAuthGuard, Introspector


def main() -> None:
    kind = sys.argv[1]
    app = starlette_app()
    if kind == "guarded":
        introspector = Introspector(
            os.environ["GG_BENCH_ENDPOINT"],
            client_id=os.environ["GG_BENCH_CLIENT_ID"],
            client_secret=os.environ["GG_BENCH_CLIENT_SECRET"],
        )
        app = GenAuthGuard(app, introspector=introspector)
    elif kind != "bare":
        raise SystemExit(f"usage: {sys.argv[0]} bare|guarded")
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose
    # proto says TCP; without it a keep-alive connection stalls on Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)

    def stop_when_parent_goes() -> None:
        sys.stdin.read()
        server.should_exit = True

    threading.Thread(target=stop_when_parent_goes, daemon=True).start()
    print(sock.getsockname()[1], flush=True)
    server.run(sockets=[sock])


if __name__ == "__main__":
    main()
