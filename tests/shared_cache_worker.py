"""One introspector with a RedisCache in a process of its own, driven by JSON lines.

``python -m tests.shared_cache_worker CONFIG_JSON``; CONFIG has ``driver``
(``async`` or ``sync``), ``endpoint``, ``client_id``, ``client_secret``,
``redis_url``, ``prefix``, and optionally ``key_secret`` and ``options``
(introspector options). It prints ``{"ready": true}``, then answers each
command line on stdin with one JSON line:

- ``introspect`` (``token``, optional ``at``: a ``time.monotonic()`` instant
  to wait for, so that several processes start together): the answer;
- ``invalidate`` (``token``), ``invalidate_subject`` (``sub``): ``{"ok"}``
  or the error's class;
- ``cached`` (``token``): whether the local cache holds an answer;
- ``watch`` (``token``): waits until the local cache no longer holds it and
  answers the ``time.monotonic()`` instant it saw that (CLOCK_MONOTONIC is
  one clock for every process of the machine);
- ``warm``: subscribes (the first use of the shared cache);
- ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from genauth_guard import Introspector, RedisCache, SyncIntrospector, TokenInfo


def answer(info: TokenInfo) -> dict[str, Any]:
    return {"active": info.active, "sub": info.sub, "scopes": sorted(info.scopes)}


def build(config: dict[str, Any]) -> Introspector | SyncIntrospector:
    cache = RedisCache(
        config["redis_url"], prefix=config["prefix"], key_secret=config.get("key_secret")
    )
    kind = Introspector if config["driver"] == "async" else SyncIntrospector
    return kind(
        config["endpoint"],
        client_id=config["client_id"],
        client_secret=config["client_secret"],
        shared_cache=cache,
        **config.get("options", {}),
    )


def reply(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def run_async(introspector: Introspector) -> None:
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            await introspector.aclose()
            return
        try:
            if op == "introspect":
                if "at" in command:
                    await asyncio.sleep(max(0.0, command["at"] - time.monotonic()))
                reply(answer(await introspector.introspect(command["token"])))
            elif op == "invalidate":
                await introspector.invalidate(command["token"])
                reply({"ok": True})
            elif op == "invalidate_subject":
                await introspector.invalidate_subject(command["sub"])
                reply({"ok": True})
            elif op == "cached":
                key = introspector.keys.token(command["token"])
                reply({"cached": introspector.cache.get(key) is not None})
            elif op == "watch":
                key = introspector.keys.token(command["token"])
                deadline = time.monotonic() + 10
                cached = introspector.cache.get
                while cached(key) is not None and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.001)  # watching what the listening task does
                reply({"gone_at": time.monotonic()})
            elif op == "warm":
                await introspector.invalidate("warm-up." + str(time.monotonic()))
                reply({"ok": True})
        except Exception as exc:
            reply({"error": type(exc).__name__})


def run_sync(introspector: SyncIntrospector) -> None:
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "quit":
            introspector.close()
            return
        try:
            if op == "introspect":
                if "at" in command:
                    time.sleep(max(0.0, command["at"] - time.monotonic()))
                reply(answer(introspector.introspect(command["token"])))
            elif op == "invalidate":
                introspector.invalidate(command["token"])
                reply({"ok": True})
            elif op == "invalidate_subject":
                introspector.invalidate_subject(command["sub"])
                reply({"ok": True})
            elif op == "cached":
                key = introspector.keys.token(command["token"])
                reply({"cached": introspector.cache.get(key) is not None})
            elif op == "watch":
                key = introspector.keys.token(command["token"])
                deadline = time.monotonic() + 10
                while introspector.cache.get(key) is not None and time.monotonic() < deadline:
                    time.sleep(0.001)
                reply({"gone_at": time.monotonic()})
            elif op == "warm":
                introspector.invalidate("warm-up." + str(time.monotonic()))
                reply({"ok": True})
        except Exception as exc:
            reply({"error": type(exc).__name__})


def main() -> None:
    introspector = build(json.loads(sys.argv[1]))
    reply({"ready": True})
    if isinstance(introspector, Introspector):
        asyncio.run(run_async(introspector))
    else:
        run_sync(introspector)


if __name__ == "__main__":
    main()
