"""``Introspector``'s port to Redis: redis-py's asyncio client, one subscription per event loop.

Every call is bounded by the ``RedisCache`` timeout (``asyncio.timeout``),
whatever the client's own settings. The subscription is a task on the
introspector's event loop that reconnects by itself (0.1 s, doubling up to
2 s) and tells the listener when it is lost (``down``) and when it is back
(``reset``: invalidations may have been missed meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any

import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

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


class AsyncRedisPort:
    """The shared steps of one ``Introspector``, performed on Redis."""

    def __init__(self, settings: RedisSettings) -> None:
        self._settings = settings
        self._names = settings.names
        self._timeout = settings.timeout
        self._client: Any = settings.client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scripts: dict[str, Any] = {}
        self._listener: SharedListener | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # ------------------------------------------------------------ the client

    def _redis(self) -> Any:
        """The client for the running loop (one built from the URL belongs to one loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._scripts = {}
            if self._settings.url is not None:
                self._client = redis.asyncio.Redis.from_url(
                    self._settings.url,
                    retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                    **client_options(self._timeout),
                )
        return self._client

    def _script(self, text: str) -> Any:
        client = self._redis()
        script = self._scripts.get(text)
        if script is None:
            script = self._scripts[text] = client.register_script(text)
        return script

    # ------------------------------------------------------------ the steps

    async def lookup(self, key: bytes, lock_ttl: float | None) -> Lookup:
        owner = secrets.token_hex(8)
        lock = "" if lock_ttl is None else str(hold_ms(lock_ttl))
        names = self._names
        async with asyncio.timeout(self._timeout):
            reply = await self._script(LOOKUP)(
                keys=[names.answer(key), names.lock(key)], args=[owner, lock]
            )
        return read_lookup(reply, key, owner, self._settings.mac_key)

    async def put(self, key: bytes, info: TokenInfo, ttl: float, subject: bytes | None) -> None:
        milliseconds = answer_ms(ttl)
        if milliseconds < 1:
            return await self.delete(key)
        names = self._names
        value = encode_answer(info, key, self._settings.mac_key)
        async with asyncio.timeout(self._timeout):
            stored = await self._script(PUT)(
                keys=[names.answer(key), names.tombstone(key)], args=[value, milliseconds]
            )
            if stored and subject is not None:
                now_ms = int(time.time() * 1000)
                indexed = await self._script(INDEX)(
                    keys=[names.index(subject), names.subject_tombstone(subject)],
                    args=[key.hex(), milliseconds, now_ms],
                )
                if not indexed:  # the subject was invalidated meanwhile
                    await self._redis().delete(names.answer(key))
        return None

    async def delete(self, key: bytes) -> None:
        async with asyncio.timeout(self._timeout):
            await self._redis().delete(self._names.answer(key))

    async def add_once(self, key: bytes, ttl: float) -> bool:
        """Remember a DPoP proof for ``ttl`` seconds; ``False`` if it was already (``SET NX``)."""
        async with asyncio.timeout(self._timeout):
            stored = await self._redis().set(self._names.proof(key), b"1", nx=True, px=hold_ms(ttl))
        return bool(stored)

    async def unlock(self, key: bytes, handle: str) -> None:
        names = self._names
        async with asyncio.timeout(self._timeout):
            await self._script(UNLOCK)(
                keys=[names.lock(key)],
                args=[handle, names.channel, event_message("wake", key)],
            )

    async def forget(self, key: bytes, hold: float) -> None:
        names = self._names
        async with asyncio.timeout(self._timeout):
            await self._script(FORGET)(
                keys=[names.answer(key), names.tombstone(key)],
                args=[hold_ms(hold), names.channel, event_message("forget", key)],
            )

    async def forget_subject(self, subject: bytes, hold: float) -> None:
        names = self._names
        async with asyncio.timeout(self._timeout):
            members = await self._script(FORGET_SUBJECT)(
                keys=[names.index(subject), names.subject_tombstone(subject)],
                args=[hold_ms(hold)],
            )
            pipe = self._redis().pipeline(transaction=False)
            for key in member_keys(members):
                pipe.delete(names.answer(key))
            pipe.publish(names.channel, event_message("forget_subject", subject))
            await pipe.execute()

    # ------------------------------------------------------------ the subscription

    async def subscribe(self, listener: SharedListener) -> None:
        self._listener = listener
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._ready = asyncio.Event()
            self._task = asyncio.ensure_future(self._listen())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._timeout):
                await self._ready.wait()

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
        if self._listener is not None:
            self._listener(kind, digest)

    async def _listen(self) -> None:
        lost = False
        delay = RECONNECT_FIRST
        while True:
            pubsub = None
            try:
                pubsub = self._redis().pubsub()
                async with asyncio.timeout(self._timeout):
                    await pubsub.subscribe(self._names.channel)
                    while await pubsub.get_message(timeout=self._timeout) is None:
                        pass  # the confirmation comes first
                if lost:
                    self._tell("reset")
                lost, delay = False, RECONNECT_FIRST
                self._ready.set()
                while True:
                    self._hear(await pubsub.get_message(timeout=1.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # any failure: listen again later, say so once
                if not lost:
                    self._tell("down")
                lost = True
                self._ready.set()
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        async with asyncio.timeout(self._timeout):
                            await pubsub.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MOST)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._settings.url is not None and self._client is not None:
            client, self._client, self._loop = self._client, None, None
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self._timeout):
                    await client.aclose()
