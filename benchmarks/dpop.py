"""What a DPoP check costs on the cached path: bare vs bearer vs DPoP, in-process.

    .venv/bin/python benchmarks/dpop.py            # about a minute on 2 cores
    .venv/bin/python benchmarks/dpop.py --quick    # a few seconds (checks the script)

The Starlette hello world of ``run.py`` called directly (``await app(scope,
receive, send)``, no server, no socket), and the Flask one as ``app(environ,
start_response)``: bare; behind the guard with a bearer token; behind the
guard with a DPoP-bound token and a fresh proof per request, for each
default proof algorithm. The introspection answer is cached before timing
(every timed request is a cache hit), so what the DPoP rows add over the
bearer row is the proof itself: parsing, the claim checks, the signature
(the key is loaded once and kept), the binding and the replay store.
Proofs are made before timing: a client's signing is not the server's cost.

Rounds are interleaved (bare, bearer, DPoP..., then the other way round)
and each cell is the median of its rounds. Nothing asserts a timing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jwt.algorithms import get_default_algorithms

from benchmarks._apps import (
    asgi_scope,
    call_wsgi,
    discard,
    flask_app,
    receive,
    starlette_app,
    wsgi_environ,
)
from benchmarks._support import (
    DevAuthServer,
    introspector_options,
    machine_line,
    serve_in_thread,
)
from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard.wsgi import GenAuthGuardWSGI
from tests.dpop_support import DPoPClient

HOST = "http://127.0.0.1:8000"


def dpop_scope(token: str, proof: str) -> dict[str, Any]:
    scope = asgi_scope(None)
    scope["headers"] = [
        *scope["headers"],
        (b"authorization", b"DPoP " + token.encode()),
        (b"dpop", proof.encode()),
    ]
    return scope


def dpop_environ(token: str, proof: str) -> dict[str, Any]:
    environ = wsgi_environ(None)
    environ["HTTP_AUTHORIZATION"] = f"DPoP {token}"
    environ["HTTP_DPOP"] = proof
    return environ


def time_asgi(loop: asyncio.AbstractEventLoop, app: Any, scopes: list[dict[str, Any]]) -> float:
    """Requests per second of ``app`` over ``scopes``, one at a time, on ``loop``."""

    async def run() -> float:
        start = time.perf_counter()
        for scope in scopes:
            await app(dict(scope), receive, discard)
        return len(scopes) / (time.perf_counter() - start)

    gc.collect()
    return loop.run_until_complete(run())


def time_wsgi(app: Any, environs: list[dict[str, Any]]) -> float:
    """Requests per second of ``app`` over ``environs``, one at a time."""
    gc.collect()
    start = time.perf_counter()
    for environ in environs:
        call_wsgi(app, environ)
    return len(environs) / (time.perf_counter() - start)


def time_signatures(client: DPoPClient, proofs: list[str]) -> float:
    """Signature checks per second alone (the cryptography primitive, through PyJWT)."""
    algorithm = get_default_algorithms()[client.alg]
    key = algorithm.from_jwk(client.jwk)
    parts = [proof.split(".") for proof in proofs]
    inputs = [(f"{h}.{p}".encode(), base64.urlsafe_b64decode(s + "==")) for h, p, s in parts]
    gc.collect()
    start = time.perf_counter()
    for signing_input, signature in inputs:
        assert algorithm.verify(signing_input, key, signature)
    return len(inputs) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small rounds (checks the script)")
    args = parser.parse_args()
    rounds, count = (3, 300) if args.quick else (5, 2000)
    algs = ("ES256", "RS256", "PS256", "EdDSA")

    server = DevAuthServer()
    with serve_in_thread(server.app) as url:
        server.issuer = url
        options = introspector_options(server)
        endpoint = server.endpoint()
        bearer = server.mint("alice", "orders:read")
        clients = {alg: DPoPClient(alg) for alg in algs}
        bound = {alg: server.mint("alice", "orders:read", jkt=c.jkt) for alg, c in clients.items()}

        loop = asyncio.new_event_loop()
        bare_asgi = starlette_app()
        guarded_asgi = GenAuthGuard(starlette_app(), introspector=Introspector(endpoint, **options))
        bare_wsgi = flask_app()
        sync = SyncIntrospector(endpoint, **options)
        guarded_wsgi = GenAuthGuardWSGI(flask_app(), introspector=sync)

        def proofs(alg: str) -> list[str]:
            client = clients[alg]
            return [client.proof("GET", HOST + "/", bound[alg]) for _ in range(count)]

        # Warm every cache (answers, loaded keys), and check that each row really passes.
        for alg in algs:
            status: list[int] = []

            async def send(message: Any, status: list[int] = status) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])

            scope = dpop_scope(bound[alg], proofs(alg)[0])
            loop.run_until_complete(guarded_asgi(scope, receive, send))
            assert status == [200], (alg, status)
            line = call_wsgi(guarded_wsgi, dpop_environ(bound[alg], proofs(alg)[0]))
            assert line.startswith("200"), (alg, line)
        assert call_wsgi(guarded_wsgi, wsgi_environ(bearer)).startswith("200")
        time_asgi(loop, guarded_asgi, [asgi_scope(bearer)])
        calls_before = server.introspection_calls

        def plan() -> list[tuple[str, Callable[[], float]]]:
            """Each row's measurement; proofs are made when the row is built, before timing."""
            rows: list[tuple[str, Callable[[], float]]] = [
                ("ASGI bare", lambda: time_asgi(loop, bare_asgi, [asgi_scope(bearer)] * count)),
                (
                    "ASGI bearer",
                    lambda: time_asgi(loop, guarded_asgi, [asgi_scope(bearer)] * count),
                ),
            ]
            for alg in algs:
                made = proofs(alg)
                scopes = [dpop_scope(bound[alg], proof) for proof in made]
                rows.append((f"ASGI DPoP {alg}", lambda s=scopes: time_asgi(loop, guarded_asgi, s)))
                rows.append(
                    (f"signature {alg}", lambda c=clients[alg], m=made: time_signatures(c, m))
                )
            environs = [dpop_environ(bound["ES256"], proof) for proof in proofs("ES256")]
            rows += [
                ("WSGI bare", lambda: time_wsgi(bare_wsgi, [wsgi_environ(bearer)] * count)),
                ("WSGI bearer", lambda: time_wsgi(guarded_wsgi, [wsgi_environ(bearer)] * count)),
                ("WSGI DPoP ES256", lambda: time_wsgi(guarded_wsgi, environs)),
            ]
            return rows

        results: dict[str, list[float]] = {}
        for index in range(rounds):
            measured = plan()
            for name, measure in measured if index % 2 == 0 else reversed(measured):
                print(f"... round {index + 1}/{rounds}: {name}", file=sys.stderr, flush=True)
                results.setdefault(name, []).append(measure())
        assert server.introspection_calls == calls_before, "a timed request was not a cache hit"

    print(machine_line())
    print(f"Settings: {rounds} rounds of {count} requests, median per row; in-process, cached.")
    print()
    print("| row | median | vs bare | added per request | of which the signature | spread |")
    print("| --- | --- | --- | --- | --- | --- |")
    rows = [name for name in results if not name.startswith("signature")]
    for name in sorted(rows, key=lambda name: (name.split()[0], "bare" not in name)):
        values = results[name]
        stack, alg = name.split()[0], name.split()[-1]
        bare = statistics.median(results[f"{stack} bare"])
        mid = statistics.median(values)
        added = (1 / mid - 1 / bare) * 1e6
        signature = results.get(f"signature {alg}")
        of_which = f"{1e6 / statistics.median(signature):,.1f} µs" if signature else "-"
        spread = (max(values) - min(values)) / 2 / mid
        print(
            f"| {name} | {mid:,.0f} ops/s | {mid / bare:.2f}x | {added:,.1f} µs | "
            f"{of_which} | ±{spread:.0%} |"
        )
    loop.close()
    sync.close()


if __name__ == "__main__":
    main()
