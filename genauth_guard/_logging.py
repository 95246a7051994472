"""The package logger, and a guard against one failure flooding the log."""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("genauth_guard")


class FailureLog:
    """Logs a failure once while it repeats, and the recovery when it ends.

    An authorization server that rejects our credentials does so for every
    request; one warning says it, the rest go to DEBUG.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: str | None = None

    def failure(self, message: str, key_hint: str) -> None:
        with self._lock:
            repeated, self._last = self._last == message, message
        level = logging.DEBUG if repeated else logging.WARNING
        logger.log(level, "introspection failed (token %s): %s", key_hint, message)

    def success(self) -> None:
        if self._last is None:  # the common case, without the lock
            return
        with self._lock:
            was, self._last = self._last, None
        if was is not None:
            logger.info("introspection works again after: %s", was)
