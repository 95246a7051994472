"""What a guard needs of the object that checks tokens: one ``introspect`` method.

The guards accept any object of this shape, not only the introspectors of
this package: a verifier with its own cache, a test double, a wrapper that
adds metrics. ``GenAuthGuard`` needs ``async def introspect``,
``GenAuthGuardWSGI`` a plain ``def introspect``; both are checked when the
guard is built, so a wrong driver is a ``ConfigurationError`` at start-up,
not a 500 on every request.

For this package's own introspectors, unchanged, ``cached_path`` hands the
guards a lock-free lookup of cached answers to try before ``introspect``:
a cached request then costs a digest and a dict read, not a coroutine.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any, Protocol, TypedDict, TypeVar, runtime_checkable

from ._base import IntrospectorBase
from ._bearer import DEFAULT_MAX_TOKEN_LENGTH
from ._cache import CachedAnswer, TokenCache
from ._token_info import TokenInfo
from .errors import ConfigurationError

F = TypeVar("F", bound=Callable[..., Any])


@runtime_checkable
class TokenVerifier(Protocol):
    """An async token checker: ``Introspector``, or anything shaped like it.

    ``introspect`` returns the ``TokenInfo`` (inactive for a bad token) or
    raises ``IntrospectionError`` when nobody can tell (the guard answers 503).
    """

    async def introspect(self, token: str) -> TokenInfo: ...


@runtime_checkable
class SyncTokenVerifier(Protocol):
    """A blocking token checker for WSGI: ``SyncIntrospector``, or anything shaped like it."""

    def introspect(self, token: str) -> TokenInfo: ...


def check_async_verifier(verifier: object) -> TokenVerifier:
    """``verifier`` if its ``introspect`` is a coroutine function, else ``ConfigurationError``."""
    if not inspect.iscoroutinefunction(getattr(verifier, "introspect", None)):
        raise ConfigurationError(
            "GenAuthGuard needs an async introspector (an object whose introspect(token) "
            f"is a coroutine function), got {type(verifier).__name__}; build "
            "Introspector(...) with the same options (SyncIntrospector is for WSGI apps "
            "and GenAuthGuardWSGI)."
        )
    return verifier  # type: ignore[return-value]


def check_sync_verifier(verifier: object) -> SyncTokenVerifier:
    """``verifier`` if its ``introspect`` is a plain callable, else ``ConfigurationError``."""
    introspect = getattr(verifier, "introspect", None)
    if inspect.iscoroutinefunction(introspect):
        raise ConfigurationError(
            "GenAuthGuardWSGI needs a SyncIntrospector (the async Introspector is for ASGI "
            "apps and GenAuthGuard); build SyncIntrospector(...) with the same options."
        )
    if not callable(introspect):
        raise ConfigurationError(
            "GenAuthGuardWSGI needs an introspector (an object with introspect(token)), got "
            f"{type(verifier).__name__}; build SyncIntrospector(...)."
        )
    return verifier  # type: ignore[return-value]


def verifier_checks_audience(verifier: object) -> bool:
    """Whether the verifier was given its own ``audience=`` rule (then the guard leaves aud be)."""
    rules = getattr(verifier, "rules", None)
    return getattr(rules, "audience", None) is not None


class VerifierSettings(TypedDict):
    """What a guard's policy takes from its verifier."""

    max_token_length: int
    check_audience: bool
    leeway: float
    replay_cache: object
    shared_cache: object
    asynchronous: bool


def verifier_settings(verifier: object) -> VerifierSettings:
    """The verifier's token length limit, audience rule, clock skew and shared cache (port).

    Read by name, with defaults: any object with ``introspect`` may be a verifier.
    """
    max_length = getattr(verifier, "max_token_length", DEFAULT_MAX_TOKEN_LENGTH)
    leeway = getattr(verifier, "leeway", 0.0)
    usable_leeway = (
        isinstance(leeway, int | float)
        and not isinstance(leeway, bool)
        and math.isfinite(leeway)
        and leeway >= 0
    )
    return VerifierSettings(
        max_token_length=max_length
        if isinstance(max_length, int) and not isinstance(max_length, bool)
        else DEFAULT_MAX_TOKEN_LENGTH,
        check_audience=not verifier_checks_audience(verifier),
        leeway=float(leeway) if usable_leeway else 0.0,
        replay_cache=getattr(verifier, "replay_cache", None),
        shared_cache=getattr(verifier, "shared_cache", None),
        asynchronous=inspect.iscoroutinefunction(getattr(verifier, "introspect", None)),
    )


# ---------------------------------------------------------------- the cached path

CachedPath = Callable[[bytes], CachedAnswer | None]
"""A verifier's cached lookup by the token's raw bytes (``IntrospectorBase._cached``)."""

_PLAIN_INTROSPECT: set[object] = set()


def plain_introspect(function: F) -> F:
    """Mark a driver's own ``introspect``: unchanged, it lets the guards take the cached path."""
    _PLAIN_INTROSPECT.add(function)
    return function


def cached_path(verifier: object) -> CachedPath | None:
    """The lock-free cached lookup the guards try first, or ``None`` for the long way only.

    Only for this package's introspectors as they are: a subclass that
    overrides ``introspect``, or a cache that is not a plain ``TokenCache``,
    must see every request, so the guards call ``introspect`` for each.
    """
    if not isinstance(verifier, IntrospectorBase):
        return None
    cache_type = type(verifier.cache)
    plain_cache = cache_type.get is TokenCache.get and cache_type.fresh is TokenCache.fresh
    if type(verifier).introspect not in _PLAIN_INTROSPECT or not plain_cache:  # type: ignore[attr-defined]
        return None
    return verifier._cached_path()
