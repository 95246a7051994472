"""DPoP replays: one proof passes once, in one process and across processes.

Eight copies of one proof sent at once through a real server: exactly one
passes. The per-process store is bounded in size and time and, when full,
narrows the window instead of forgetting a proof that could still pass.
Across workers, proofs are remembered in the introspector's shared cache
when its port can ``add_once`` (``RedisCache`` on a real redis-server:
``SET NX PX``); a shared cache that fails refuses the proof (503), it
never lets it through.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import redis

from genauth_guard import RedisCache
from genauth_guard._dpop import DPoPProof, replay_key
from genauth_guard._replay import LocalReplayStore

from .conftest import RunningAuthServer
from .dpop_support import DPoPClient, Guarded, refused_proof, serve_guard

KINDS = ("asgi", "wsgi")


def send_at_once(guarded: Guarded, headers: dict[str, str], copies: int = 8) -> list[int]:
    """``copies`` requests with the same headers, released together; their statuses."""
    barrier = threading.Barrier(copies)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        with httpx.Client(timeout=10) as http:
            barrier.wait()
            status = http.get(guarded.url + "/orders", headers=headers).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    return sorted(statuses)


@pytest.mark.parametrize("kind", KINDS)
def test_eight_copies_of_one_proof_at_once_one_passes(
    kind: str, auth_server: RunningAuthServer
) -> None:
    client = DPoPClient()
    with serve_guard(kind, auth_server) as guarded:
        for cached in (False, True):  # the first token is introspected by all eight at once
            token = auth_server.server.mint(f"user-{cached}", jkt=client.jkt)
            if cached:
                assert guarded.dpop(client, token).status_code == 200
            headers = client.headers("GET", guarded.url + "/orders", token)
            assert send_at_once(guarded, headers) == [200] + [401] * 7


# ---------------------------------------------------------------- the local store's bounds


def proof(jti: str, iat: float, jkt: str = "k" * 43) -> DPoPProof:
    return DPoPProof(jkt, jti, iat)


def test_the_store_forgets_a_proof_once_its_window_has_passed() -> None:
    store = LocalReplayStore(window=306, skew=5, maxsize=10)
    assert store.add(proof("a", 1000), now=1000) is None
    assert store.add(proof("a", 1000), now=1300) is not None
    assert store.add(proof("b", 1300), now=1300) is None
    assert store.add(proof("c", 1307), now=1307) is None
    assert len(store) == 2  # "a" is gone: its iat can no longer pass the window (300 s)


def test_a_full_store_narrows_the_window_rather_than_forget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LocalReplayStore(window=306, skew=5, maxsize=3)
    for index in range(3):
        assert store.add(proof(f"p{index}", 1000 + index), now=1000 + index) is None
    # Full: the oldest (recorded at 1000) goes, and no proof issued up to 1005 passes again.
    assert store.add(proof("fresh", 1010), now=1010) is None
    assert len(store) == 3
    assert "too old" in (store.add(proof("p0", 1000), now=1011) or "")  # the dropped one
    assert "too old" in (store.add(proof("late", 1004), now=1011) or "")
    assert "already used" in (store.add(proof("p2", 1002), now=1011) or "")
    assert store.add(proof("fresh2", 1011), now=1011) is None
    assert any("replay store full" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- across processes


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port, no persistence."""
    executable = shutil.which("redis-server")
    assert executable, "redis-server is needed for the shared replay tests"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [executable, "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def replay_keys(url: str, prefix: str) -> dict[bytes, int]:
    """The proofs ``RedisCache`` remembered under ``prefix``, with their milliseconds left."""
    client = redis.Redis.from_url(url)
    return {key: client.pttl(key) for key in client.scan_iter(match=prefix + "p:*")}


class GuardedAt:
    """Requests to ``guarded`` with the ``Host`` of ``public``: a second worker behind one name."""

    def __init__(self, guarded: Guarded, public: str) -> None:
        self.guarded, self.host = guarded, public.removeprefix("http://")

    def get(self, **kwargs: Any) -> httpx.Response:
        headers = {**kwargs.pop("headers", {}), "Host": self.host}
        return self.guarded.client.get(self.guarded.url + "/orders", headers=headers, **kwargs)


def test_a_proof_used_on_one_worker_is_refused_on_another(
    auth_server: RunningAuthServer, redis_url: str
) -> None:
    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    prefix = "dpop-test-" + secrets.token_hex(4) + ":"

    def shared() -> dict[str, Any]:  # each worker builds its own, as each process would
        return {"introspector": {"shared_cache": RedisCache(redis_url, prefix=prefix)}}

    with (
        serve_guard("asgi", auth_server, **shared()) as first,
        serve_guard("wsgi", auth_server, **shared()) as second,
        serve_guard("wsgi", auth_server) as unshared,
    ):
        # Three workers behind one name (first.url), as a load balancer spreads requests.
        behind = [GuardedAt(first, first.url), GuardedAt(second, first.url)]
        expected = set()
        for used, replayed in (behind, behind[::-1]):
            headers = client.headers("GET", first.url + "/orders", token)
            jti = jwt.decode(headers["DPoP"], options={"verify_signature": False})["jti"]
            expected.add(f"{prefix}p:{{{replay_key(client.jkt, jti).hex()}}}".encode())
            assert used.get(headers=headers).status_code == 200
            refused_proof(replayed.get(headers=headers), "already used")
            assert GuardedAt(unshared, first.url).get(headers=headers).status_code == 200
    remembered = replay_keys(redis_url, prefix)
    assert set(remembered) == expected  # by a digest of jti and key, never the proof
    assert all(295_000 < ttl <= 306_000 for ttl in remembered.values())  # 300 + 5 + 1 s


@pytest.mark.parametrize("kind", KINDS)
def test_a_failing_shared_cache_refuses_dpop_and_leaves_bearer_alone(
    kind: str, auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    client = DPoPClient()
    bound = auth_server.server.mint("alice", jkt=client.jkt)
    unbound = auth_server.server.mint("bob")
    with socket.socket() as sock:  # a port nobody listens on: Redis is down
        sock.bind(("127.0.0.1", 0))
        down = f"redis://127.0.0.1:{sock.getsockname()[1]}/0"
    cache = RedisCache(down, timeout=0.2)
    with serve_guard(kind, auth_server, introspector={"shared_cache": cache}) as guarded:
        refused = guarded.dpop(client, bound)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert "replays" in refused.json()["error_description"]
        assert guarded.dpop(client, bound).status_code == 503  # still down: still closed
        assert guarded.get(headers={"Authorization": f"Bearer {unbound}"}).status_code == 200
    # WARNING once a minute, DEBUG in between: either way, it says why.
    logged = [r.getMessage() for r in caplog.records]
    assert any("could not record a DPoP proof (ConnectionError)" in m for m in logged)


class WithoutAddOnce:
    """A port of a shared cache from before DPoP: everything but ``add_once``."""

    def __init__(self, port: Any) -> None:
        self._port = port

    def __getattr__(self, name: str) -> Any:
        if name == "add_once":
            raise AttributeError(name)
        return getattr(self._port, name)


class AnswersOnly:
    """A shared cache whose ports cannot remember proofs."""

    def __init__(self, inner: RedisCache) -> None:
        self.inner = inner

    def cache_keys(self, *bound_to: str) -> Any:
        return self.inner.cache_keys(*bound_to)

    def async_port(self) -> Any:
        return WithoutAddOnce(self.inner.async_port())

    def sync_port(self) -> Any:
        return WithoutAddOnce(self.inner.sync_port())


@pytest.mark.parametrize("kind", KINDS)
def test_a_shared_cache_that_cannot_add_once_leaves_replays_to_each_process(
    kind: str, auth_server: RunningAuthServer, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    client = DPoPClient()
    token = auth_server.server.mint("alice", jkt=client.jkt)
    cache = AnswersOnly(RedisCache(redis_url, prefix="old:"))
    with serve_guard(kind, auth_server, introspector={"shared_cache": cache}) as guarded:
        headers = client.headers("GET", guarded.url + "/orders", token)
        assert guarded.get(headers=headers).status_code == 200
        refused_proof(guarded.get(headers=headers), "already used")
    assert any("each process detects replays" in r.getMessage() for r in caplog.records)
