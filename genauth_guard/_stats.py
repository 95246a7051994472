"""What an introspector has done, counted cheaply enough to stay on.

The counters are plain ``int`` attributes incremented in place: no lock, no
atomic type, nothing a cache hit would feel. Under the GIL ``x.n += 1`` on
an ``int`` does not interleave with another thread's (CPython only switches
threads at calls and backward jumps), so the counts are exact there; a
free-threaded interpreter could lose an increment under contention, which
a monitoring counter can afford and a lock on every hit could not.

Who counts what: the drivers count what happens before a flow starts (a
local hit, a request that joins another's flight); the flow (``_flow``)
counts what it decides (a miss it takes on, a shared-cache hit, each call
and its duration, retries, failures and their reasons, stale answers).
``IntrospectorStats`` is a frozen copy taken by ``introspector.stats()``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

_NO_REASONS: Mapping[str, int] = MappingProxyType({})


class Counters:
    """The running counts of one introspector, shared by its driver and its flow."""

    __slots__ = (
        "call_seconds_sum",
        "calls",
        "coalesced",
        "failure_reasons",
        "failures",
        "hits",
        "inactive",
        "misses",
        "retries",
        "revocations",
        "shared_hits",
        "shed",
        "stale_served",
    )

    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.coalesced = 0
        self.shared_hits = 0
        self.calls = 0
        self.retries = 0
        self.failures = 0
        self.shed = 0
        self.stale_served = 0
        self.inactive = 0
        self.revocations = 0
        self.call_seconds_sum = 0.0
        self.failure_reasons: dict[str, int] = {}

    def failed(self, reason: str) -> None:
        """One introspection ended without an answer from the server, for ``reason``."""
        self.failures += 1
        self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1

    def snapshot(self, *, cache_size: int, in_flight: int) -> IntrospectorStats:
        """A frozen copy, with the two gauges the caller measured."""
        return IntrospectorStats(
            hits=self.hits,
            misses=self.misses,
            coalesced=self.coalesced,
            shared_hits=self.shared_hits,
            calls=self.calls,
            retries=self.retries,
            failures=self.failures,
            shed=self.shed,
            stale_served=self.stale_served,
            inactive=self.inactive,
            revocations=self.revocations,
            cache_size=cache_size,
            in_flight=in_flight,
            call_seconds_sum=self.call_seconds_sum,
            failure_reasons=MappingProxyType(dict(self.failure_reasons)),
        )


@dataclass(frozen=True, slots=True)
class IntrospectorStats:
    """Counts since the introspector was made (``introspector.stats()``); never reset.

    Every ``introspect()`` that gets past the token's syntax check is one of
    ``hits`` (answered by the local cache, inactive answers included),
    ``misses`` (not in the local cache: this request's introspection ran) or
    ``coalesced`` (not in the local cache, but another request was already
    introspecting the same token: this one waited for that answer). A miss
    ends as one of: a ``shared_hits`` (the shared cache knew), an answer from
    the server after ``calls`` (``retries`` of them repeats), or one of
    ``failures`` (no answer: the requests get 503; ``failure_reasons`` by
    ``IntrospectionError.reason``), of which ``shed`` were refused without a
    call (circuit open, no call slot in time) and ``stale_served`` were
    answered from an old, unexpired answer instead (``serve_stale_on_error``).
    ``inactive``: answers from the server that said no (or broke a claim
    rule). ``revocations``: revocation requests sent. ``call_seconds_sum``:
    seconds spent in introspection calls, so ``call_seconds_sum / calls``
    is their mean duration. Gauges: ``cache_size`` (answers held locally,
    both kinds), ``in_flight`` (introspections running now).
    """

    hits: int = 0
    misses: int = 0
    coalesced: int = 0
    shared_hits: int = 0
    calls: int = 0
    retries: int = 0
    failures: int = 0
    shed: int = 0
    stale_served: int = 0
    inactive: int = 0
    revocations: int = 0
    cache_size: int = 0
    in_flight: int = 0
    call_seconds_sum: float = 0.0
    failure_reasons: Mapping[str, int] = field(default_factory=lambda: _NO_REASONS, compare=False)

    @property
    def lookups(self) -> int:
        """Every introspection asked for: ``hits + misses + coalesced``."""
        return self.hits + self.misses + self.coalesced

    @property
    def hit_ratio(self) -> float:
        """Share of lookups the local cache answered (0.0 before any)."""
        lookups = self.lookups
        return self.hits / lookups if lookups else 0.0
