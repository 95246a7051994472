"""Real Redis servers and worker processes for the shared-cache tests.

``redis_url`` is the redis-server on 127.0.0.1:6379 if one answers there
(CI machines run one), else one these tests start on a free port. Tests
that stop Redis start their own (``RedisProcess``). A missing
``redis-server`` fails the tests with what to install; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisProcess:
    """A redis-server of the test's own on 127.0.0.1, that can be stopped and started again."""

    def __init__(self, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "these tests need a real redis-server and none answers on 127.0.0.1:6379 or "
                "is on PATH: install Redis (Debian: apt-get install redis-server)"
            )
        self.binary = binary
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="gg-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not answers(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


@contextmanager
def redis_process() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@contextmanager
def any_redis() -> Iterator[str]:
    """The URL of the machine's Redis on 6379, or of one started for the session."""
    if answers(DEFAULT_URL):
        yield DEFAULT_URL
        return
    with redis_process() as server:
        yield server.url


def unique_prefix() -> str:
    return f"gg-test:{uuid.uuid4().hex[:12]}:"


def keys_under(client: redis.Redis, prefix: str) -> list[bytes]:
    return list(client.scan_iter(match=prefix + "*", count=1000))


def drop_prefix(client: redis.Redis, prefix: str) -> None:
    keys = keys_under(client, prefix)
    if keys:
        client.delete(*keys)


# ---------------------------------------------------------------- worker processes


class Worker:
    """An introspector in a process of its own (``tests/shared_cache_worker.py``).

    ``call(op, **args)`` sends one JSON command and returns its JSON answer.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.shared_cache_worker", json.dumps(dict(config))],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        hello = self._read()
        assert hello == {"ready": True}, hello

    def _read(self) -> Any:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            raise RuntimeError(
                "worker died: " + self.process.stderr.read().decode(errors="replace")[-3000:]
            )
        return json.loads(line)

    def send(self, op: str, **args: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **args}) + "\n").encode())
        self.process.stdin.flush()

    def receive(self) -> Any:
        return self._read()

    def call(self, op: str, **args: Any) -> Any:
        self.send(op, **args)
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@contextmanager
def workers(count: int, config: Mapping[str, Any]) -> Iterator[list[Worker]]:
    started: list[Worker] = []
    try:
        for _ in range(count):
            started.append(Worker(config))
        yield started
    finally:
        for worker in started:
            worker.close()
