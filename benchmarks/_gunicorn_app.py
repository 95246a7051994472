"""The WSGI app of the sync rows, served by gunicorn's threaded worker (``-k gthread``).

``gunicorn _gunicorn_app:app`` with ``GG_BENCH_CLIENT`` one of:

- ``guard``: ``GenAuthGuardWSGI`` with a ``SyncIntrospector`` around a hello
  world (what a Flask or Django user runs);
- ``httpx``, ``urllib3``: no guard; the handler posts the request's bearer
  token to the introspection endpoint with that raw client (one pooled
  client per worker, shared by its threads) and answers 200 if it is active.

Every request carries a token never seen before (``_loadgen.py --tokens``),
so every request is a cache miss. The endpoint and credentials come from
``GG_BENCH_ENDPOINT``, ``GG_BENCH_CLIENT_ID``, ``GG_BENCH_CLIENT_SECRET``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from genauth_guard import SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI

ENDPOINT = os.environ["GG_BENCH_ENDPOINT"]
FORM = {
    "token_type_hint": "access_token",
    "client_id": os.environ["GG_BENCH_CLIENT_ID"],
    "client_secret": os.environ["GG_BENCH_CLIENT_SECRET"],
}
StartResponse = Callable[..., Any]


def hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def raw(post: Callable[[str], bool]) -> Callable[..., Iterable[bytes]]:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        token = environ.get("HTTP_AUTHORIZATION", "").removeprefix("Bearer ")
        status = "200 OK" if post(token) else "401 Unauthorized"
        start_response(status, [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    return app


def make_app() -> Callable[..., Iterable[bytes]]:
    kind = os.environ["GG_BENCH_CLIENT"]
    if kind == "guard":
        introspector = SyncIntrospector(
            ENDPOINT, client_id=FORM["client_id"], client_secret=FORM["client_secret"]
        )
        return GenAuthGuardWSGI(hello, introspector=introspector)
    if kind == "httpx":
        client = httpx.Client(
            timeout=5.0,
            follow_redirects=False,
            trust_env=False,
            limits=httpx.Limits(max_connections=64),
        )

        def post_httpx(token: str) -> bool:
            response = client.post(ENDPOINT, data={"token": token, **FORM})
            return response.status_code == 200 and response.json().get("active") is True

        return raw(post_httpx)
    if kind == "urllib3":
        import urllib3

        pool = urllib3.PoolManager(maxsize=64, block=True, timeout=5.0, retries=False)

        def post_urllib3(token: str) -> bool:
            response = pool.request(
                "POST", ENDPOINT, fields={"token": token, **FORM}, encode_multipart=False
            )
            return response.status == 200 and json.loads(response.data).get("active") is True

        return raw(post_urllib3)
    raise SystemExit(f"GG_BENCH_CLIENT={kind!r}: guard, httpx or urllib3")


app = make_app()
