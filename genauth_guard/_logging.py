"""The package logger, and a guard against one failure flooding the log."""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("genauth_guard")


REPEAT_INTERVAL = 60.0
"""Seconds before the same failure is logged at WARNING again (DEBUG meanwhile)."""


class FailureLog:
    """Logs each kind of failure at WARNING once a minute, the rest at DEBUG.

    An authorization server that rejects our credentials does so for every
    request, and a flood can alternate "too busy", "timed out", "circuit
    open" and successes thousands of times a second: one warning per message
    and minute, and one "works again" (INFO) per minute, say it all.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: str | None = None
        self._warned: dict[str, float] = {}
        self._recovered = -REPEAT_INTERVAL

    def failure(self, message: str, key_hint: str, reason: str = "introspection_failed") -> None:
        """One line: the reason word, the token's digest prefix, what to do; never the token."""
        now = time.monotonic()
        with self._lock:
            self._last = message
            warned = self._warned.get(message)
            loud = warned is None or now - warned >= REPEAT_INTERVAL
            if loud:
                if len(self._warned) >= 64:  # bounded, whatever the server says
                    self._warned.clear()
                self._warned[message] = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "introspection failed (token %s, reason %s): %s",
            key_hint,
            reason,
            message,
        )

    def retrying(self, message: str, key_hint: str, attempt: int, delay: float) -> None:
        """An attempt failed and will be repeated: DEBUG, the final outcome is what counts."""
        logger.debug(
            "introspection attempt %d failed (token %s), retrying in %.2f s: %s",
            attempt,
            key_hint,
            delay,
            message,
        )

    def success(self) -> None:
        if self._last is None:  # the common case, without the lock
            return
        now = time.monotonic()
        with self._lock:
            was, self._last = self._last, None
            loud = now - self._recovered >= REPEAT_INTERVAL
            if was is not None and loud:
                self._recovered = now
        if was is not None:
            level = logging.INFO if loud else logging.DEBUG
            logger.log(level, "introspection works again after: %s", was)


def token_rejected(key_hint: str, reason: str) -> None:
    """An active answer the introspector's claim rules turned down (served as inactive)."""
    logger.info("token %s refused: %s", key_hint, reason)


def stale_served(key_hint: str) -> None:
    """``serve_stale_on_error`` answered from an old but unexpired cached answer."""
    logger.debug("token %s: served a stale cached answer while the server is failing", key_hint)


_last_warned: dict[str, float] = {}


def _loud(kind: str) -> bool:
    """True once a minute per ``kind`` of degradation (WARNING), else False (DEBUG)."""
    now = time.monotonic()
    if now - _last_warned.get(kind, -REPEAT_INTERVAL) < REPEAT_INTERVAL:
        return False
    _last_warned[kind] = now
    return True


def profile_failed(key_hint: str, message: str) -> None:
    """A profile could not be read; the answer goes on without it (WARNING once a minute)."""
    logger.log(
        logging.WARNING if _loud("userinfo") else logging.DEBUG,
        "userinfo of token %s not available, answering without it: %s",
        key_hint,
        message,
    )


class SharedCacheLog:
    """The shared cache's outages, logged the way introspection failures are.

    The first failure after a quiet minute is a WARNING, the rest DEBUG; the
    first success after failures is one INFO (at most once a minute). Redis
    down means every request fails the same way: this says it once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing = False
        self._warned = -REPEAT_INTERVAL
        self._recovered = -REPEAT_INTERVAL
        self._unreadable = -REPEAT_INTERVAL

    def failed(self, what: str) -> None:
        """A shared-cache call failed (``what``: the kind of failure, never data)."""
        now = time.monotonic()
        with self._lock:
            self._failing = True
            loud = now - self._warned >= REPEAT_INTERVAL
            if loud:
                self._warned = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "shared cache failed (%s); answering from the local cache and the authorization "
            "server until it is back",
            what,
        )

    def worked(self) -> None:
        """A shared-cache call succeeded: say so once if it had been failing."""
        if not self._failing:  # the common case, without the lock
            return
        now = time.monotonic()
        with self._lock:
            was, self._failing = self._failing, False
            loud = was and now - self._recovered >= REPEAT_INTERVAL
            if loud:
                self._recovered = now
        if was:
            logger.log(logging.INFO if loud else logging.DEBUG, "shared cache works again")

    def resubscribed(self) -> None:
        """Listening again after a loss: the local cache was cleared."""
        self.worked()
        logger.info(
            "shared cache: listening for invalidations again; the local cache was cleared "
            "since invalidations may have been missed meanwhile"
        )

    def unreadable(self, key_hint: str) -> None:
        """A stored value was no answer: deleted and treated as a miss."""
        now = time.monotonic()
        with self._lock:
            loud = now - self._unreadable >= REPEAT_INTERVAL
            if loud:
                self._unreadable = now
        logger.log(
            logging.WARNING if loud else logging.DEBUG,
            "shared cache held an unreadable value for token %s (corrupt, forged, written "
            "with another key_secret or version); deleted it and asked the server",
            key_hint,
        )
