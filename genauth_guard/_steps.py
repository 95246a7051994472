"""The steps a flow yields, and what the drivers send back for them.

A flow (``_flow``, ``_shared_flow``) never does I/O: it yields one of these
and the driver performs it, with asyncio (``Introspector._perform``) or
threads (``SyncIntrospector._perform``), then resumes the flow with the
outcome (or throws in the exception it met).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from ._token_info import TokenInfo


@dataclass(frozen=True, slots=True)
class TakeSlot:
    """Wait up to ``timeout`` seconds for one of the call slots; resume with ``True`` if taken.

    The driver gives the slot back when the flow ends, however it ends.
    """

    timeout: float


@dataclass(frozen=True, slots=True)
class Exchange:
    """Send ``request`` within the call timeout; resume with the ``Answer`` (or the error)."""

    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds`` (the backoff before a retry); resume with ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SharedGet:
    """Look ``key`` up in the shared cache; resume with a ``_shared.Lookup``.

    With ``lock_ttl``, a miss also tries to take the key's lock for that
    many seconds, in the same round trip (``Lead`` or ``Follow``).
    """

    key: bytes
    lock_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class SharedPut:
    """Store the server's answer ``info`` under ``key`` for ``ttl`` s, indexed by ``subject``."""

    key: bytes
    info: TokenInfo
    ttl: float
    subject: bytes | None = None


@dataclass(frozen=True, slots=True)
class SharedDelete:
    """Drop ``key`` from the shared cache, quietly; resume with ``None``."""

    key: bytes


@dataclass(frozen=True, slots=True)
class SharedUnlock:
    """Release ``key``'s lock taken as ``handle`` and wake the processes waiting on it."""

    key: bytes
    handle: str


@dataclass(frozen=True, slots=True)
class SharedWait:
    """Sleep until another process announces ``key``'s answer, or ``seconds`` pass.

    A local wait (no shared-cache call): the driver listens for the wake-up
    from the moment a ``SharedGet`` answered ``Follow``.
    """

    key: bytes
    seconds: float


@dataclass(frozen=True, slots=True)
class SharedForget:
    """Drop ``key`` everywhere, refuse writes of it for ``hold`` seconds, tell every process."""

    key: bytes
    hold: float


@dataclass(frozen=True, slots=True)
class SharedForgetSubject:
    """Drop every answer of ``subject`` everywhere (as ``SharedForget``)."""

    subject: bytes
    hold: float


Step = (
    TakeSlot
    | Exchange
    | Wait
    | SharedGet
    | SharedPut
    | SharedDelete
    | SharedUnlock
    | SharedWait
    | SharedForget
    | SharedForgetSubject
)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server sent back: status, headers and the (bounded, decoded) body."""

    status: int
    headers: httpx.Headers
    body: bytes


Flow = Generator[Step, Any, Any]
"""A sequence: yields steps, receives their outcomes, returns its result."""
