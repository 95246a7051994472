"""The revocation sequence (RFC 7009), with no I/O, for ``IntrospectionFlow.revocation``.

One ``Exchange`` step, judged here: only a 200 confirms; anything else, a
transport failure included, is a ``RevocationError``. Counted
(``revocations``) and traced (a ``genauth_guard.revoke`` span). Forgetting
the token's answers afterwards is the flow's (``forget``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from ._protocol import check_revocation_response, token_request, transport_error
from ._stats import Counters
from ._steps import Answer, Exchange, Flow
from ._telemetry import NoSpan, Tracing, traced
from .errors import ConfigurationError, IntrospectionError, RevocationError

if TYPE_CHECKING:
    from ._flow_settings import FlowSettings


def revocation(
    settings: FlowSettings,
    counters: Counters,
    tracing: Tracing,
    token: str,
    token_type_hint: str | None,
) -> Flow:
    """Revoke ``token`` at the configured endpoint; ``RevocationError`` unless confirmed."""
    endpoint = settings.revocation_endpoint
    if endpoint is None:
        raise ConfigurationError(
            "revoke() needs a revocation endpoint: pass revocation_endpoint= to the "
            "constructor, or build the introspector with from_genauth() or "
            "from_discovery(), which know it."
        )
    request = token_request(endpoint, settings.revocation_auth, token, token_type_hint)
    counters.revocations += 1
    span = tracing.revocation()
    yield from traced(span, _confirmed(endpoint, request, span), lambda _: "revoked")


def _confirmed(endpoint: str, request: httpx.Request, span: NoSpan) -> Flow:
    try:
        with span.current():  # an instrumented HTTP client's span nests under it
            answer: Answer = yield Exchange(request)
    except Exception as exc:
        error = exc
        if not isinstance(exc, IntrospectionError):
            error = transport_error("revocation", endpoint, exc)
        raise RevocationError(f"The token may not be revoked: {error}") from None
    span.set("http.response.status_code", answer.status)
    check_revocation_response(answer.status, answer.headers, answer.body)
