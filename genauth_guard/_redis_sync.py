"""``SyncIntrospector``'s port to Redis: redis-py's blocking client, a listening thread.

A client built from the URL has the ``RedisCache`` timeout on every socket
operation; a client you pass keeps its own (give it ``socket_timeout``).
The subscription runs in a daemon thread that reconnects by itself
(0.1 s, doubling up to 2 s) and tells the listener, from that thread, what
other processes announce, when it is lost (``down``) and when it is back
(``reset``).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.retry import Retry

from ._redis_format import (
    FORGET,
    FORGET_SUBJECT,
    INDEX,
    LOOKUP,
    PUT,
    UNLOCK,
    answer_ms,
    encode_answer,
    event_message,
    hold_ms,
    member_keys,
    parse_event,
    read_lookup,
)
from ._redis_settings import RECONNECT_FIRST, RECONNECT_MOST, RedisSettings, client_options
from ._shared import Lookup, SharedListener
from ._token_info import TokenInfo


class SyncRedisPort:
    """The shared steps of one ``SyncIntrospector``, performed on Redis (thread-safe)."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        self._names = settings.names
        self._timeout = settings.timeout
        self._lock = threading.Lock()
        self._client: Any = settings.client
        self._scripts: dict[str, Any] = {}
        self._listener: SharedListener | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()

    def _redis(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None and self._settings.url is not None:
                    self._client = redis.Redis.from_url(
                        self._settings.url,
                        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                        **client_options(self._timeout),
                    )
        return self._client

    def _script(self, text: str) -> Any:
        script = self._scripts.get(text)
        if script is None:
            script = self._scripts[text] = self._redis().register_script(text)
        return script

    # ------------------------------------------------------------ the steps

    def lookup(self, key: bytes, lock_ttl: float | None) -> Lookup:
        owner = secrets.token_hex(8)
        lock = "" if lock_ttl is None else str(hold_ms(lock_ttl))
        names = self._names
        reply = self._script(LOOKUP)(keys=[names.answer(key), names.lock(key)], args=[owner, lock])
        return read_lookup(reply, key, owner, self._settings.mac_key)

    def put(self, key: bytes, info: TokenInfo, ttl: float, subject: bytes | None) -> None:
        milliseconds = answer_ms(ttl)
        if milliseconds < 1:
            return self.delete(key)
        names = self._names
        value = encode_answer(info, key, self._settings.mac_key)
        stored = self._script(PUT)(
            keys=[names.answer(key), names.tombstone(key)], args=[value, milliseconds]
        )
        if stored and subject is not None:
            now_ms = int(time.time() * 1000)
            indexed = self._script(INDEX)(
                keys=[names.index(subject), names.subject_tombstone(subject)],
                args=[key.hex(), milliseconds, now_ms],
            )
            if not indexed:  # the subject was invalidated meanwhile
                self._redis().delete(names.answer(key))
        return None

    def delete(self, key: bytes) -> None:
        self._redis().delete(self._names.answer(key))

    def add_once(self, key: bytes, ttl: float) -> bool:
        """Remember a DPoP proof for ``ttl`` seconds; ``False`` if it was already (``SET NX``)."""
        stored = self._redis().set(self._names.proof(key), b"1", nx=True, px=hold_ms(ttl))
        return bool(stored)

    def unlock(self, key: bytes, handle: str) -> None:
        names = self._names
        self._script(UNLOCK)(
            keys=[names.lock(key)], args=[handle, names.channel, event_message("wake", key)]
        )

    def forget(self, key: bytes, hold: float) -> None:
        names = self._names
        self._script(FORGET)(
            keys=[names.answer(key), names.tombstone(key)],
            args=[hold_ms(hold), names.channel, event_message("forget", key)],
        )

    def forget_subject(self, subject: bytes, hold: float) -> None:
        names = self._names
        members = self._script(FORGET_SUBJECT)(
            keys=[names.index(subject), names.subject_tombstone(subject)], args=[hold_ms(hold)]
        )
        pipe = self._redis().pipeline(transaction=False)
        for key in member_keys(members):
            pipe.delete(names.answer(key))
        pipe.publish(names.channel, event_message("forget_subject", subject))
        pipe.execute()

    # ------------------------------------------------------------ the subscription

    def subscribe(self, listener: SharedListener) -> None:
        self._listener = listener
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._ready = threading.Event()
                self._thread = threading.Thread(
                    target=self._listen,
                    args=(self._stop, self._ready),
                    name="genauth-guard-redis",
                    daemon=True,
                )
                self._thread.start()
            ready = self._ready
        ready.wait(self._timeout)

    def _hear(self, message: Any) -> None:
        """Pass an event on; a new subscription confirmation means redis-py reconnected
        by itself, and messages may have been lost in between."""
        if message is None:
            return
        if message.get("type") == "subscribe":
            self._tell("reset")
        elif message.get("type") == "message":
            event = parse_event(message["data"])
            if event is not None:
                self._tell(*event)

    def _tell(self, kind: Any, digest: bytes = b"") -> None:
        listener = self._listener
        if listener is not None:
            listener(kind, digest)

    def _listen(self, stop: threading.Event, ready: threading.Event) -> None:
        lost = False
        delay = RECONNECT_FIRST
        while not stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis().pubsub()
                pubsub.subscribe(self._names.channel)
                deadline = time.monotonic() + self._timeout
                while pubsub.get_message(timeout=self._timeout) is None:
                    if time.monotonic() > deadline:
                        raise TimeoutError("no subscription confirmation")
                if lost:
                    self._tell("reset")
                lost, delay = False, RECONNECT_FIRST
                ready.set()
                while not stop.is_set():
                    self._hear(pubsub.get_message(timeout=0.5))
            except Exception:  # any failure: listen again later, say so once
                if stop.is_set():
                    break
                if not lost:
                    self._tell("down")
                lost = True
                ready.set()
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()
            stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MOST)

    def close(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout=2)
        if self._settings.url is not None and self._client is not None:
            client, self._client = self._client, None
            self._scripts = {}
            with contextlib.suppress(Exception):
                client.close()
