"""Both HTTP transports of ``Introspector``, for tests that must hold on each.

``aiohttp`` is the default when the extra is installed (the test extra
installs it); ``httpx`` is what a user without the extra gets: the same
constructor with aiohttp made unimportable while it runs, so the fallback
path itself is what is exercised, not a client the test builds.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from genauth_guard import Introspector

TRANSPORTS = ("aiohttp", "httpx")


def build_introspector(transport: str, endpoint: str, **options: Any) -> Introspector:
    """An ``Introspector`` on ``transport`` (``aiohttp`` or ``httpx``), as a user would get it."""
    if transport == "aiohttp":
        introspector = Introspector(endpoint, **options)
    else:
        with pytest.MonkeyPatch.context() as patch:
            patch.setitem(sys.modules, "aiohttp", None)  # as if the extra were not installed
            introspector = Introspector(endpoint, **options)
    assert introspector.transport.split()[0] == transport, introspector.transport
    return introspector
