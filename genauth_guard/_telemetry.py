"""OpenTelemetry spans around the calls an introspector makes (``genauth-guard[otel]``).

One span per introspection that reaches past the local cache (a miss: the
shared cache, then the authorization server) and one per revocation; none
for a cache hit, which must stay a digest and a lookup. The flow (``_flow``)
opens and fills them, so both drivers trace alike; while a call is on the
wire the span is the current one, so an instrumented httpx client's own
span nests under it.

Attributes are chosen so that none can carry a token or a secret: the
endpoint's host and port (never its URL: a misconfigured one could hold
credentials), the HTTP status, the outcome, the cache level, the number of
attempts, the failure's class and reason word. Never the token, its digest,
the client's credentials or an answer's claims.

``opentelemetry-api`` is optional: without it (or with its default no-op
provider) every span here is a shared do-nothing object.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError

try:
    from opentelemetry import trace as _trace
except ImportError:  # the extra is not installed: tracing is off
    _trace = None  # type: ignore[assignment]

TRACER_NAME = "genauth_guard"
INTROSPECT_SPAN = "genauth_guard.introspect"
REVOKE_SPAN = "genauth_guard.revoke"


class NoSpan:
    """What the flow holds when nothing is traced: every method does nothing."""

    __slots__ = ()

    def set(self, name: str, value: str | int) -> None:
        pass

    def failed(self, exc: BaseException) -> None:
        pass

    def current(self) -> AbstractContextManager[object]:
        return _NO_CONTEXT

    def end(self) -> None:
        pass


_NO_CONTEXT = nullcontext()
NO_SPAN = NoSpan()


class CallSpan(NoSpan):
    """One recording OpenTelemetry span, filled with safe attributes only."""

    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, name: str, value: str | int) -> None:
        self._span.set_attribute(name, value)

    def failed(self, exc: BaseException) -> None:
        """Mark the span failed by the exception's class and reason word, not its message.

        Messages are written to be safe, but a span leaves the process: the
        class and the ``reason`` say what happened, the log says the rest.
        """
        assert _trace is not None
        kind = type(exc).__name__
        self._span.set_attribute("error.type", kind)
        reason = getattr(exc, "reason", None)
        if isinstance(reason, str):
            self._span.set_attribute("genauth_guard.failure_reason", reason)
        self._span.set_status(_trace.Status(_trace.StatusCode.ERROR, kind))

    def current(self) -> AbstractContextManager[object]:
        return _current(self._span)

    def end(self) -> None:
        self._span.end()


@contextmanager
def _current(span: Any) -> Iterator[object]:
    assert _trace is not None
    with _trace.use_span(
        span, end_on_exit=False, record_exception=False, set_status_on_exception=False
    ):
        yield span


def _server(url: str | None) -> dict[str, str | int]:
    """``server.address`` and ``server.port`` of an endpoint URL (nothing else of it)."""
    if url is None:
        return {}
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return {"server.address": parts.hostname or "", "server.port": port}


class Tracing:
    """The spans of one introspector: off, or from ``tracer_provider`` (else the global one)."""

    def __init__(
        self,
        tracer_provider: Any = None,
        *,
        introspection_endpoint: str,
        revocation_endpoint: str | None = None,
    ) -> None:
        if _trace is None:
            if tracer_provider is not None:
                raise ConfigurationError(
                    "tracer_provider= needs OpenTelemetry: pip install 'genauth-guard[otel]' "
                    "(or leave tracer_provider unset)."
                )
            self._tracer: Any = None
        else:
            from . import __version__

            self._tracer = _trace.get_tracer(
                TRACER_NAME, __version__, tracer_provider=tracer_provider
            )
        self._introspection = _server(introspection_endpoint)
        self._revocation = _server(revocation_endpoint)

    def _start(self, name: str, attributes: dict[str, str | int]) -> NoSpan:
        if self._tracer is None:
            return NO_SPAN
        span = self._tracer.start_span(name, kind=_trace.SpanKind.CLIENT, attributes=attributes)
        return CallSpan(span) if span.is_recording() else NO_SPAN

    def introspection(self) -> NoSpan:
        """The span of one introspection past the local cache (ended by the caller)."""
        return self._start(INTROSPECT_SPAN, self._introspection)

    def revocation(self) -> NoSpan:
        """The span of one revocation (ended by the caller)."""
        return self._start(REVOKE_SPAN, self._revocation)


def traced(
    span: NoSpan, sequence: Generator[Any, Any, Any], outcome: Callable[[Any], str]
) -> Generator[Any, Any, Any]:
    """Run a flow ``sequence`` inside ``span``: its outcome (or failure) recorded, then ended."""
    try:
        result = yield from sequence
    except BaseException as exc:
        span.failed(exc)
        raise
    else:
        span.set("genauth_guard.outcome", outcome(result))
        return result
    finally:
        span.end()
