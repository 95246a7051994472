"""RedisCache against a real redis-server: sharing, single flight, invalidation, what Redis holds.

Processes are real processes (``tests/shared_cache_worker.py``); the
introspection calls are counted by the dev authorization server they all ask.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from genauth_guard import (
    ConfigurationError,
    IntrospectionError,
    Introspector,
    RedisCache,
    SharedCacheError,
    SyncIntrospector,
)
from genauth_guard._cache import namespace

from .conftest import RunningAuthServer
from .redis_support import ROOT, keys_under, workers
from .wsgi_support import GatedAuthServer, gated_auth_server

pytestmark = pytest.mark.anyio


def options(prefix: str, redis_url: str, **extra: Any) -> dict[str, Any]:
    key_secret = extra.pop("key_secret", None)
    return {
        "client_id": "post-client",
        "client_secret": "post-secret",
        "shared_cache": RedisCache(redis_url, prefix=prefix, key_secret=key_secret),
        **extra,
    }


def worker_config(
    endpoint: str, redis_url: str, prefix: str, driver: str = "async", **extra: Any
) -> dict[str, Any]:
    return {
        "driver": driver,
        "endpoint": endpoint,
        "client_id": "post-client",
        "client_secret": "post-secret",
        "redis_url": redis_url,
        "prefix": prefix,
        **extra,
    }


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


# ---------------------------------------------------------------- configuration


def test_redis_cache_imports_without_redis_and_asks_for_the_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from genauth_guard import RedisCache, SharedCacheError\n"
        "try:\n"
        "    RedisCache('redis://127.0.0.1:6379/0')\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("ConfigurationError")
    assert "pip install 'genauth-guard[redis]'" in out


@pytest.mark.parametrize(
    ("args", "kwargs", "says"),
    [
        (("http://127.0.0.1:6379",), {}, "must start with redis://"),
        (("redis://:hunter22@127.0.0.1:port/0",), {}, "cannot read the URL"),
        ((42,), {}, "not int"),
        (("redis://127.0.0.1",), {"key_secret": "short"}, "key_secret is too short"),
        (("redis://127.0.0.1",), {"key_secret": 1234567890123456789}, "str or bytes"),
        (("redis://127.0.0.1",), {"prefix": ""}, "non-empty str"),
        (("redis://127.0.0.1",), {"prefix": "app{1}:"}, "without '{' or '}'"),
        (("redis://127.0.0.1",), {"timeout": 0}, "above 0"),
        (("redis://127.0.0.1",), {"timeout": float("nan")}, "above 0"),
    ],
)
def test_bad_redis_cache_options_are_refused_with_advice(
    args: tuple[Any, ...], kwargs: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RedisCache(*args, **kwargs)
    assert says in str(caught.value)
    assert "hunter22" not in str(caught.value)


def test_repr_shows_neither_password_nor_key_secret() -> None:
    cache = RedisCache("redis://:hunter22@127.0.0.1:6379/0", key_secret="s" * 32)
    assert "hunter22" not in repr(cache)
    assert "s" * 32 not in repr(cache)
    assert "key_secret=<set>" in repr(cache)


def test_a_client_of_the_wrong_kind_is_refused_at_construction(
    auth_server: RunningAuthServer, redis_url: str
) -> None:
    blocking = RedisCache(redis.Redis.from_url(redis_url))
    asynchronous = RedisCache(redis.asyncio.Redis.from_url(redis_url))
    public = {"client_id": "public-client", "auth_method": "none"}
    with pytest.raises(ConfigurationError, match=r"needs a redis\.asyncio one"):
        Introspector(auth_server.endpoint(), shared_cache=blocking, **public)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="needs a blocking one"):
        SyncIntrospector(auth_server.endpoint(), shared_cache=asynchronous, **public)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="shared_cache must be a RedisCache"):
        SyncIntrospector(auth_server.endpoint(), shared_cache=object(), **public)  # type: ignore[arg-type]


# ---------------------------------------------------------------- sharing across processes


@pytest.mark.parametrize(("first", "second"), [("async", "async"), ("async", "sync")])
def test_a_second_process_makes_no_call(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, first: str, second: str
) -> None:
    tokens = [auth_server.server.mint(sub, ["orders:read"]) for sub in ("alice", "bob")]
    inactive = "never-issued-token"
    endpoint = auth_server.endpoint()
    with (
        workers(1, worker_config(endpoint, redis_url, redis_prefix, first)) as (a,),
        workers(1, worker_config(endpoint, redis_url, redis_prefix, second)) as (b,),
    ):
        before = auth_server.calls
        answers_a = [a.call("introspect", token=t) for t in [*tokens, inactive]]
        assert auth_server.calls - before == 3
        answers_b = [b.call("introspect", token=t) for t in [*tokens, inactive]]
        assert auth_server.calls - before == 3  # the second process asked nobody
    assert answers_a == answers_b
    assert [a["sub"] for a in answers_b] == ["alice", "bob", None]
    assert [a["active"] for a in answers_b] == [True, True, False]


def test_four_processes_started_together_make_one_call(
    gated: GatedAuthServer, redis_url: str, redis_prefix: str
) -> None:
    token = gated.server.mint("alice", ["orders:read"])
    config = worker_config(gated.endpoint(), redis_url, redis_prefix)
    with (
        workers(2, config) as async_workers,
        workers(2, {**config, "driver": "sync"}) as sync_workers,
        gated.slowed(0.3),  # the first call is still running when the others miss
    ):
        everyone = [*async_workers, *sync_workers]
        for worker in everyone:
            assert worker.call("warm") == {"ok": True}
        before = gated.calls
        at = time.monotonic() + 0.5
        for worker in everyone:
            worker.send("introspect", token=token, at=at)
        answers = [worker.receive() for worker in everyone]
    assert gated.calls - before == 1
    assert all(a == {"active": True, "sub": "alice", "scopes": ["orders:read"]} for a in answers)


async def test_an_async_and_a_sync_introspector_share_entries(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str
) -> None:
    token = auth_server.server.mint("carol", ["a", "b"])
    before = auth_server.calls
    async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as first:
        info = await first.introspect(token)
    with SyncIntrospector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as second:
        again = second.introspect(token)
    assert auth_server.calls - before == 1
    assert again == info
    assert again.claims == info.claims


async def test_a_shared_answer_keeps_the_life_it_has_left(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = auth_server.server.mint("dave", ["a"])
    async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as first:
        await first.introspect(token)
        (answer_key,) = [k for k in keys_under(store, redis_prefix) if b":t:" in k]
        store.pexpire(answer_key, 1500)  # as if it had been written long ago
    async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as second:
        assert (await second.introspect(token)).sub == "dave"
        key = second.keys.token(token)
        await asyncio.sleep(1.6)
        assert second.cache.get(key) is None  # gone locally when it is gone in Redis


async def test_claim_rules_apply_to_shared_answers_too(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str
) -> None:
    token = auth_server.server.mint("erin", ["a"])
    async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as lax:
        assert (await lax.introspect(token)).active
    strict_options = options(redis_prefix, redis_url, audience="https://other.example")
    async with Introspector(auth_server.endpoint(), **strict_options) as strict:
        before = auth_server.calls
        assert not (await strict.introspect(token)).active
        assert auth_server.calls == before  # read from Redis, and still refused by its rules


# ---------------------------------------------------------------- invalidation


@pytest.mark.parametrize("driver", ["async", "sync"])
async def test_invalidate_reaches_another_process_within_100_ms(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, driver: str
) -> None:
    token = auth_server.server.mint("frank", ["a"])
    config = worker_config(auth_server.endpoint(), redis_url, redis_prefix, driver)
    with workers(1, config) as (other,):
        assert other.call("introspect", token=token)["active"]
        async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as me:
            assert (await me.introspect(token)).active
            other.send("watch", token=token)
            await asyncio.sleep(0.2)  # the watcher is polling its cache
            started = time.monotonic()
            await me.invalidate(token)
            gone_at = other.receive()["gone_at"]
        assert started <= gone_at <= started + 0.1
        before = auth_server.calls
        assert other.call("introspect", token=token)["active"]  # asks again: still valid
        assert auth_server.calls == before + 1


@pytest.mark.parametrize("driver", ["async", "sync"])
async def test_invalidate_subject_reaches_another_process_and_spares_other_users(
    auth_server: RunningAuthServer,
    redis_url: str,
    redis_prefix: str,
    store: redis.Redis,
    driver: str,
) -> None:
    alice = [auth_server.server.mint("alice", ["a"]) for _ in range(2)]
    bob = auth_server.server.mint("bob", ["a"])
    config = worker_config(auth_server.endpoint(), redis_url, redis_prefix, driver)
    with workers(1, config) as (other,):
        for token in [*alice, bob]:
            assert other.call("introspect", token=token)["active"]
        assert len([k for k in keys_under(store, redis_prefix) if b":t:" in k]) == 3
        async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as me:
            other.send("watch", token=alice[0])
            await asyncio.sleep(0.2)
            started = time.monotonic()
            await me.invalidate_subject("alice")
            gone_at = other.receive()["gone_at"]
        assert started <= gone_at <= started + 0.1
        assert other.call("cached", token=alice[1]) == {"cached": False}
        assert other.call("cached", token=bob) == {"cached": True}
        assert len([k for k in keys_under(store, redis_prefix) if b":t:" in k]) == 1
        before = auth_server.calls
        assert other.call("introspect", token=bob)["sub"] == "bob"
        assert auth_server.calls == before


def test_invalidate_subject_locally_without_a_shared_cache(auth_server: RunningAuthServer) -> None:
    tokens = {sub: auth_server.server.mint(sub, ["a"]) for sub in ("gina", "hank")}
    with SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        for token in tokens.values():
            introspector.introspect(token)
        introspector.invalidate_subject("gina")
        assert introspector.cache.get(introspector.keys.token(tokens["gina"])) is None
        assert introspector.cache.get(introspector.keys.token(tokens["hank"])) is not None
        with pytest.raises(TypeError, match="non-empty str"):
            introspector.invalidate_subject("")


async def test_revoke_reaches_every_process(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str
) -> None:
    token = auth_server.server.mint("ivan", ["a"])
    config = worker_config(auth_server.endpoint(), redis_url, redis_prefix, "sync")
    revocation = auth_server.url + "/oidc/token/revocation"
    with workers(1, config) as (other,):
        assert other.call("introspect", token=token)["active"]
        async with Introspector(
            auth_server.endpoint(),
            revocation_endpoint=revocation,
            **options(redis_prefix, redis_url),
        ) as me:
            other.send("watch", token=token)
            await me.revoke(token)
            other.receive()
        assert other.call("introspect", token=token)["active"] is False


async def test_an_answer_fetched_before_an_invalidation_is_not_kept(
    gated: GatedAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = gated.server.mint("judy", ["a"])
    async with Introspector(gated.endpoint(), **options(redis_prefix, redis_url)) as me:
        with gated.slowed(0.5):
            flight = asyncio.ensure_future(me.introspect(token))
            await asyncio.sleep(0.2)  # the call is on its way
            await me.invalidate(token)
            assert (await flight).active  # asked before: answered
        assert me.cache.get(me.keys.token(token)) is None
        assert not [k for k in keys_under(store, redis_prefix) if b":t:" in k]


# ---------------------------------------------------------------- what Redis holds


def test_pttl_never_exceeds_the_lifetime_rule(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    short = auth_server.server.mint("kate", ["a"], expires_in=20)
    long = auth_server.server.mint("kate", ["a"])
    shared = options(redis_prefix, redis_url, cache_ttl=300.0, negative_cache_ttl=4.0)
    endpoint = auth_server.endpoint()
    with SyncIntrospector(endpoint, **shared) as introspector:
        cases = {short: 20_000, "never-issued": 4_000}
        for token, limit in cases.items():
            introspector.introspect(token)
            ttl = store.pttl(answer_key(store, redis_prefix, introspector, token))
            assert 0 < ttl <= limit
    capped = options(redis_prefix + "capped:", redis_url, cache_ttl=3.0, negative_cache_ttl=0.0)
    with SyncIntrospector(endpoint, **capped) as introspector:
        introspector.introspect(long)
        ttl = store.pttl(answer_key(store, redis_prefix + "capped:", introspector, long))
        assert 0 < ttl <= 3_000
        introspector.introspect("another-never-issued")  # negative_cache_ttl=0: not written
        assert len([k for k in keys_under(store, redis_prefix + "capped:") if b":t:" in k]) == 1
        introspector.invalidate_subject("kate")
        introspector.invalidate(short)
    every_key = keys_under(store, redis_prefix)
    assert {k.split(b":")[-2][-1:] for k in every_key} >= {b"t", b"s", b"x", b"y"}
    assert all(store.pttl(k) > 0 for k in every_key)  # answers, indexes, tombstones alike


def answer_key(store: redis.Redis, prefix: str, introspector: Any, token: str) -> bytes:
    name = f"{prefix}t:{{{introspector.keys.token(token).hex()}}}".encode()
    assert store.exists(name)
    return name


async def test_redis_never_holds_the_token(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = auth_server.server.mint("leo", ["a"])
    seen: list[bytes] = []
    pubsub = store.pubsub()
    pubsub.subscribe(redis_prefix + "events")
    stop = threading.Event()

    def listen() -> None:
        while not stop.is_set():
            message = pubsub.get_message(timeout=0.05)
            if message is not None:
                seen.append(bytes(str(message["data"]), "utf-8"))

    listener = threading.Thread(target=listen)
    listener.start()
    async with Introspector(auth_server.endpoint(), **options(redis_prefix, redis_url)) as me:
        await me.introspect(token)
        await me.introspect("never-issued-token-xyz")
        everything = [*keys_under(store, redis_prefix)]
        everything += [store.get(k) or b"" for k in everything if store.type(k) == b"string"]
        everything += [
            m
            for k in keys_under(store, redis_prefix)
            if store.type(k) == b"zset"
            for m in store.zrange(k, 0, -1)
        ]
        await me.invalidate_subject("leo")
        await me.invalidate(token)
        await asyncio.sleep(0.2)
    stop.set()
    listener.join()
    pubsub.close()
    assert len(seen) >= 3
    for blob in [*everything, *seen]:
        assert token.encode() not in blob
        assert b"never-issued-token-xyz" not in blob


async def test_key_secret_changes_the_keys(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = auth_server.server.mint("mia", ["a"])
    endpoint = auth_server.endpoint()
    guessable = hashlib.sha256(namespace(endpoint, "post-client") + token.encode()).hexdigest()
    names: dict[str, set[bytes]] = {}
    for label, secret in [("plain", None), ("one", "1" * 32), ("two", b"2" * 32)]:
        prefix = f"{redis_prefix}{label}:"
        async with Introspector(endpoint, **options(prefix, redis_url, key_secret=secret)) as me:
            await me.introspect(token)
        names[label] = {k.removeprefix(prefix.encode()) for k in keys_under(store, prefix)}
    assert names["plain"] != names["one"] != names["two"]
    assert any(guessable.encode() in k for k in names["plain"])  # what key_secret is for
    assert not any(guessable.encode() in k for k in names["one"] | names["two"])
    before = auth_server.calls
    other_secret = options(redis_prefix + "one:", redis_url, key_secret="3" * 32)
    async with Introspector(endpoint, **other_secret) as stranger:
        assert (await stranger.introspect(token)).active
    assert auth_server.calls == before + 1  # another secret shares nothing


@pytest.mark.parametrize(
    "damage", ["garbage", "forged", "moved from another token", "no ttl", "a hash"]
)
async def test_a_corrupted_value_is_a_miss_not_an_answer(
    auth_server: RunningAuthServer,
    redis_url: str,
    redis_prefix: str,
    store: redis.Redis,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    victim = auth_server.server.mint("nina", ["read"])
    admin = auth_server.server.mint("root", ["admin"])
    shared = options(redis_prefix, redis_url, key_secret="k" * 32)
    endpoint = auth_server.endpoint()
    async with Introspector(endpoint, **shared) as writer:
        await writer.introspect(victim)
        await writer.introspect(admin)
        victim_key = answer_key(store, redis_prefix, writer, victim)
        admin_key = answer_key(store, redis_prefix, writer, admin)
    good = store.get(victim_key)
    assert good is not None
    if damage == "garbage":
        store.set(victim_key, b"\x00\xffnot an answer", px=60_000)
    elif damage == "forged":
        claims = {"active": True, "sub": "root", "scope": "admin"}
        store.set(victim_key, b"1" + b"A" * 22 + json.dumps(claims).encode(), px=60_000)
    elif damage == "moved from another token":
        store.set(victim_key, store.get(admin_key) or b"", px=60_000)
    elif damage == "no ttl":
        store.persist(victim_key)
    else:
        store.delete(victim_key)
        store.hset(victim_key, "active", "true")
        store.pexpire(victim_key, 60_000)
    before = auth_server.calls
    async with Introspector(endpoint, **shared) as reader:
        info = await reader.introspect(victim)
    assert (info.sub, info.scopes) == ("nina", frozenset({"read"}))
    assert auth_server.calls == before + 1  # the server was asked, not the damaged value
    repaired = store.get(victim_key)
    assert repaired is not None and store.pttl(victim_key) > 0
    assert any("unreadable value" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- single flight's edges


async def test_a_waiter_asks_itself_when_the_lock_holder_never_answers(
    auth_server: RunningAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = auth_server.server.mint("olga", ["a"])
    async with Introspector(
        auth_server.endpoint(), timeout=0.5, **options(redis_prefix, redis_url)
    ) as me:
        lock = f"{redis_prefix}l:{{{me.keys.token(token).hex()}}}"
        store.set(lock, "a process that died", px=60_000)
        before = auth_server.calls
        assert (await me.introspect(token)).sub == "olga"
    assert auth_server.calls == before + 1


async def test_a_failure_is_not_shared_and_frees_the_lock_at_once(
    gated: GatedAuthServer, redis_url: str, redis_prefix: str, store: redis.Redis
) -> None:
    token = gated.server.mint("pete", ["a"])
    async with Introspector(gated.endpoint(), retries=0, **options(redis_prefix, redis_url)) as me:
        with gated.failing(503), pytest.raises(IntrospectionError):
            await me.introspect(token)
        assert keys_under(store, redis_prefix) == []  # no answer, no lock left behind
        assert (await me.introspect(token)).sub == "pete"


def test_invalidate_with_redis_unreachable_drops_locally_then_raises(
    auth_server: RunningAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    from .redis_support import free_port

    token = auth_server.server.mint("quinn", ["a"])
    dead = RedisCache(f"redis://127.0.0.1:{free_port()}/0", prefix="gg-dead:")
    with SyncIntrospector(
        auth_server.endpoint(),
        client_id="post-client",
        client_secret="post-secret",
        shared_cache=dead,
    ) as me:
        assert me.introspect(token).active
        assert me.cache.get(me.keys.token(token)) is not None
        with pytest.raises(SharedCacheError, match="other processes may keep serving it"):
            me.invalidate(token)
        assert me.cache.get(me.keys.token(token)) is None
        with pytest.raises(SharedCacheError):
            me.invalidate_subject("quinn")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "shared cache failed" in warnings[0].getMessage()


async def test_the_profile_is_shared_with_the_answer(redis_url: str, redis_prefix: str) -> None:
    from genauth_guard.dev.server import DevAuthServer
    from genauth_guard.testing import serve_in_thread

    from .test_userinfo import ADA, CLIENT, MeProxy

    server = DevAuthServer([CLIENT])
    front = MeProxy(server)
    with serve_in_thread(front) as url:
        server.issuer = url
        token = server.mint(ADA, "openid profile email")
        shared = {"shared_cache": RedisCache(redis_url, prefix=redis_prefix)}
        readers = []
        for require in (False, True):
            async with Introspector.from_genauth(
                "rs", "rs-secret", url, userinfo=True, require_userinfo=require, **shared
            ) as introspector:
                readers.append(await introspector.introspect(token))
    assert [info.userinfo and info.userinfo["email"] for info in readers] == [
        "ada@example.com",
        "ada@example.com",
    ]
    assert (server.introspection_calls, front.me_calls) == (1, 1)  # the second asked nobody
