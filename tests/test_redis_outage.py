"""Redis down, slow or answering garbage: answers stay right, nothing fails, sharing comes back.

Redis is a real redis-server of the test's own (stopped and started again)
or the machine's behind ``TcpFront``, a TCP relay that can refuse, hang or
answer garbage the way a broken network or a wrong port does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from genauth_guard import GenAuthGuard, Introspector, RedisCache, SyncIntrospector
from genauth_guard.dev.testing import serve_in_thread

from .conftest import RunningAuthServer
from .fault_upstream import TcpFront
from .redis_support import RedisProcess, free_port, redis_process, workers
from .shared_cache_app import health, whoami

pytestmark = pytest.mark.anyio


def shared_options(url: str, prefix: str, **extra: object) -> dict[str, object]:
    return {
        "client_id": "post-client",
        "client_secret": "post-secret",
        "shared_cache": RedisCache(url, prefix=prefix, timeout=0.2),
        **extra,
    }


def shared_cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and "shared cache" in r.getMessage()
    ]


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    with redis_process() as server:
        yield server


@pytest.fixture
def front(redis_url: str) -> Iterator[TcpFront]:
    relay = TcpFront(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    yield relay
    relay.close()


def sharing_resumes(
    auth_server: RunningAuthServer, first: SyncIntrospector, second: object, seconds: float
) -> bool:
    """True once a fresh token one process asked about costs the other no call."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        token = auth_server.server.mint("probe", ["a"])
        assert first.introspect(token).sub == "probe"
        before = auth_server.calls
        answer = (
            second.introspect(token).sub  # type: ignore[attr-defined]
            if isinstance(second, SyncIntrospector)
            else second.call("introspect", token=token)["sub"]  # type: ignore[attr-defined]
        )
        assert answer == "probe"
        if auth_server.calls == before:
            return True
        time.sleep(0.2)
    return False


def test_redis_stopped_mid_test_gives_right_answers_and_sharing_resumes(
    auth_server: RunningAuthServer,
    own_redis: RedisProcess,
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = "gg-outage:"
    server = auth_server.server
    alice, bob = server.mint("alice", ["a"]), server.mint("bob", ["b"])
    revoked = server.mint("mallory", ["a"])
    config = {
        "driver": "async",
        "endpoint": auth_server.endpoint(),
        "client_id": "post-client",
        "client_secret": "post-secret",
        "redis_url": own_redis.url,
        "prefix": prefix,
    }
    with (
        SyncIntrospector(auth_server.endpoint(), **shared_options(own_redis.url, prefix)) as me,  # type: ignore[arg-type]
        workers(1, config) as (other,),
    ):
        assert me.introspect(alice).sub == "alice"
        before = auth_server.calls
        assert other.call("introspect", token=alice)["sub"] == "alice"
        assert auth_server.calls == before  # shared

        own_redis.stop()
        server.revoke(revoked)
        for _ in range(3):  # the first misses meet the dead Redis, later ones skip it
            assert me.introspect(alice).sub == "alice"
            assert me.introspect(bob).sub == "bob"
            assert not me.introspect(revoked).active
            assert not me.introspect("never-issued").active
            assert other.call("introspect", token=bob)["sub"] == "bob"
            assert other.call("introspect", token=revoked)["active"] is False

        own_redis.start()
        assert sharing_resumes(auth_server, me, other, seconds=10)
    assert len(shared_cache_warnings(caplog)) == 1  # the outage, said once
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_a_hanging_redis_costs_its_timeout_a_few_times_then_is_skipped(
    auth_server: RunningAuthServer, front: TcpFront, redis_url: str, redis_prefix: str
) -> None:
    via_front = f"redis://127.0.0.1:{front.port}/0"
    endpoint = auth_server.endpoint()
    with (
        SyncIntrospector(endpoint, **shared_options(via_front, redis_prefix)) as me,  # type: ignore[arg-type]
        SyncIntrospector(endpoint, **shared_options(redis_url, redis_prefix)) as direct,  # type: ignore[arg-type]
    ):
        assert sharing_resumes(auth_server, me, direct, seconds=1)
        front.mode = "hang"
        tokens = [auth_server.server.mint(f"user-{n}", ["a"]) for n in range(10)]
        for n, token in enumerate(tokens):
            assert me.introspect(token).sub == f"user-{n}"
        # Ten misses would be twenty Redis calls; after three timeouts in a row
        # Redis is skipped (a probe at most every few seconds).
        assert front.faulted <= 5
        front.mode = "pass"
        assert sharing_resumes(auth_server, me, direct, seconds=10)


@pytest.mark.parametrize("fault", ["refused", "hang", "garbage", "reset"])
def test_a_redis_problem_is_never_a_500_or_a_401(
    auth_server: RunningAuthServer,
    front: TcpFront,
    redis_prefix: str,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from starlette.applications import Starlette
    from starlette.routing import Route

    if fault == "refused":
        front.refuse()
    else:
        front.mode = fault
    introspector = Introspector(
        auth_server.endpoint(),
        **shared_options(f"redis://127.0.0.1:{front.port}/0", redis_prefix),  # type: ignore[arg-type]
    )
    app = GenAuthGuard(
        Starlette(routes=[Route("/", whoami), Route("/health", health)]),
        introspector=introspector,
    )
    tokens = {f"user-{n}": auth_server.server.mint(f"user-{n}", ["a"]) for n in range(5)}
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(2):
            for sub, token in tokens.items():
                response = client.get("/", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200
                assert response.json()["sub"] == sub
            refused = client.get("/", headers={"Authorization": "Bearer never-issued"})
            assert refused.status_code == 401
    assert len(shared_cache_warnings(caplog)) == 1


@pytest.mark.parametrize("driver", ["async", "sync"])
def test_resubscribing_after_a_loss_clears_the_local_cache(
    auth_server: RunningAuthServer, own_redis: RedisProcess, driver: str
) -> None:
    token = auth_server.server.mint("rita", ["a"])
    config = {
        "driver": driver,
        "endpoint": auth_server.endpoint(),
        "client_id": "post-client",
        "client_secret": "post-secret",
        "redis_url": own_redis.url,
        "prefix": "gg-resubscribe:",
    }
    with workers(1, config) as (other,):
        assert other.call("introspect", token=token)["sub"] == "rita"
        assert other.call("cached", token=token) == {"cached": True}
        admin = own_redis.client()
        assert admin.client_kill_filter(_type="pubsub") >= 1  # invalidations could be missed now
        admin.close()
        deadline = time.monotonic() + 10
        while other.call("cached", token=token)["cached"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert other.call("cached", token=token) == {"cached": False}
        before = auth_server.calls
        assert other.call("introspect", token=token)["sub"] == "rita"
        assert auth_server.calls == before  # refilled from Redis, not from the server


def test_a_dead_redis_at_start_up_does_not_stop_the_introspector(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    token = auth_server.server.mint("sam", ["a"])
    with SyncIntrospector(auth_server.endpoint(), **shared_options(dead, "gg-dead:")) as me:  # type: ignore[arg-type]
        for _ in range(5):
            assert me.introspect(token).sub == "sam"
            me.clear()
    assert len(shared_cache_warnings(caplog)) == 1
