"""Prometheus metrics for introspectors (``pip install 'genauth-guard[prometheus]'``).

A custom collector in prometheus-client's pattern: nothing is counted twice
and nothing runs per request. The introspectors count anyway (``stats()``,
plain integers); the collector reads ``stats()`` when Prometheus scrapes and
turns the numbers into metric families::

    from prometheus_client import REGISTRY
    from genauth_guard.prometheus import IntrospectorCollector

    REGISTRY.register(IntrospectorCollector(introspector))            # one
    REGISTRY.register(IntrospectorCollector({"api": a, "admin": b}))  # several

Labels: ``introspector`` (the name given here, ``"default"`` for one) and,
on failures, ``reason`` (``IntrospectionError.reason``: a fixed set of
words). No label ever carries a token, a digest, a client id or a secret.
The metric names are listed in ``METRICS`` and in
``docs/speed-and-observability.md``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from ._stats import IntrospectorStats
from .errors import ConfigurationError

try:
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
except ImportError:  # the extra is not installed: the collector says so when made
    _prometheus = False
else:
    _prometheus = True

__all__ = ["METRICS", "FAILURE_REASONS", "IntrospectorCollector"]

METRICS: Final[dict[str, tuple[str, str, str]]] = {
    # exposed name: (kind, IntrospectorStats field, help)
    "genauth_guard_cache_hits_total": (
        "counter",
        "hits",
        "Introspections answered by the local cache (inactive answers included).",
    ),
    "genauth_guard_cache_misses_total": (
        "counter",
        "misses",
        "Introspections the local cache could not answer (each ran one introspection).",
    ),
    "genauth_guard_coalesced_total": (
        "counter",
        "coalesced",
        "Introspections that waited for another request's introspection of the same token.",
    ),
    "genauth_guard_shared_cache_hits_total": (
        "counter",
        "shared_hits",
        "Misses answered by the shared cache (shared_cache=) without a call.",
    ),
    "genauth_guard_introspection_call_seconds": (
        "summary",
        "call_seconds_sum",
        "Introspection calls to the authorization server and their duration (count, sum).",
    ),
    "genauth_guard_introspection_retries_total": (
        "counter",
        "retries",
        "Introspection calls that repeated a failed one.",
    ),
    "genauth_guard_introspection_failures_total": (
        "counter",
        "failures",
        "Introspections that ended without an answer (503), by IntrospectionError.reason.",
    ),
    "genauth_guard_introspection_shed_total": (
        "counter",
        "shed",
        "Failures without a call: circuit breaker open, or no call slot in time.",
    ),
    "genauth_guard_stale_served_total": (
        "counter",
        "stale_served",
        "Failures answered from an old, unexpired answer (serve_stale_on_error).",
    ),
    "genauth_guard_inactive_answers_total": (
        "counter",
        "inactive",
        "Answers from the server that said inactive (or broke a claim rule).",
    ),
    "genauth_guard_revocations_total": (
        "counter",
        "revocations",
        "Revocation requests sent to the authorization server.",
    ),
    "genauth_guard_cache_entries": (
        "gauge",
        "cache_size",
        "Answers held in the local cache (active and inactive).",
    ),
    "genauth_guard_introspections_in_flight": (
        "gauge",
        "in_flight",
        "Introspections running now.",
    ),
}
"""Every metric the collector exposes (names as in the text format)."""

FAILURE_REASONS: Final = (
    "server_unavailable",
    "invalid_response",
    "invalid_client",
    "request_rejected",
    "introspection_failed",
)
"""The ``reason`` label values, each exposed from the start (0 until it happens)."""


class _HasStats(Protocol):
    def stats(self) -> IntrospectorStats: ...


def _checked(introspectors: _HasStats | Mapping[str, _HasStats]) -> dict[str, _HasStats]:
    named = (
        dict(introspectors) if isinstance(introspectors, Mapping) else {"default": introspectors}
    )
    if not named:
        raise ConfigurationError("IntrospectorCollector needs at least one introspector.")
    for name, introspector in named.items():
        if not isinstance(name, str) or not name or len(name) > 64 or not name.isprintable():
            raise ConfigurationError(
                f"IntrospectorCollector names label metrics: give each introspector a short "
                f"printable name (1 to 64 characters), not {name!r}."
            )
        if not callable(getattr(introspector, "stats", None)):
            raise ConfigurationError(
                f"IntrospectorCollector reads stats() of Introspector or SyncIntrospector; "
                f"got {type(introspector).__name__} for {name!r}."
            )
    return named


class IntrospectorCollector:
    """Exposes the ``stats()`` of one introspector (label ``"default"``) or of several by name."""

    def __init__(self, introspectors: _HasStats | Mapping[str, _HasStats]) -> None:
        if not _prometheus:
            raise ConfigurationError(
                "IntrospectorCollector needs prometheus-client: pip install "
                "'genauth-guard[prometheus]'."
            )
        self._introspectors = _checked(introspectors)

    def describe(self) -> Iterator[Metric]:
        """The metric names (no samples), so a registry refuses a second collector early."""
        yield from self._families({})

    def collect(self) -> Iterator[Metric]:
        """One sample per metric and introspector, read from ``stats()`` now."""
        stats = {name: introspector.stats() for name, introspector in self._introspectors.items()}
        yield from self._families(stats)

    def _families(self, stats: Mapping[str, IntrospectorStats]) -> Iterator[Metric]:
        for exposed, (kind, field, help_text) in METRICS.items():
            if kind == "summary":
                summary = SummaryMetricFamily(exposed, help_text, labels=["introspector"])
                for name, taken in stats.items():
                    summary.add_metric(
                        [name], count_value=taken.calls, sum_value=getattr(taken, field)
                    )
                yield summary
            elif exposed == "genauth_guard_introspection_failures_total":
                yield self._failures(exposed, help_text, stats)
            else:
                family: Any = (
                    CounterMetricFamily(
                        exposed.removesuffix("_total"), help_text, labels=["introspector"]
                    )
                    if kind == "counter"
                    else GaugeMetricFamily(exposed, help_text, labels=["introspector"])
                )
                for name, taken in stats.items():
                    family.add_metric([name], getattr(taken, field))
                yield family

    @staticmethod
    def _failures(exposed: str, help_text: str, stats: Mapping[str, IntrospectorStats]) -> Metric:
        family = CounterMetricFamily(
            exposed.removesuffix("_total"), help_text, labels=["introspector", "reason"]
        )
        for name, taken in stats.items():
            reasons = dict.fromkeys(FAILURE_REASONS, 0)
            reasons.update(taken.failure_reasons)
            for reason, count in reasons.items():
                family.add_metric([name, reason], count)
        return family
