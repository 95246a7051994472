"""Run an ASGI app on 127.0.0.1 in a background thread, for tests and the demo.

Needs uvicorn (``pip install 'genauth-guard[dev-server]'``).
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def serve_in_thread(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 10.0
) -> Iterator[str]:
    """Serve ``app`` with uvicorn until the block ends; yields its base URL.

    ``port=0`` picks a free port: the socket is bound here, so the URL is
    known before the server starts and nothing races for the port.
    """
    try:
        import uvicorn
    except ImportError:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "serving needs uvicorn: pip install 'genauth-guard[dev-server]'"
        ) from None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says
    # TCP, and without it every reused keep-alive connection waits ~40 ms (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="auto", timeout_graceful_shutdown=2
    )
    server = uvicorn.Server(config)

    def run() -> None:
        # Ctrl-C and SIGTERM are the main thread's to handle. Left unblocked here,
        # the kernel may hand them to this thread, and a main thread asleep in
        # time.sleep() would never wake to raise KeyboardInterrupt.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        server.run(sockets=[sock])

    thread = threading.Thread(target=run, name=f"uvicorn:{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise RuntimeError(f"the server on {host}:{bound_port} did not start")
        time.sleep(0.01)
    try:
        url_host = f"[{host}]" if ":" in host else host
        yield f"http://{url_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
