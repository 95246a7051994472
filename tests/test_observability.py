"""Operators can see what the guard does: Prometheus metrics and OpenTelemetry spans.

- The collector exposes ``stats()`` through a real ``prometheus_client``
  registry's text format, labelled by introspector name (and failure reason).
- A span is recorded for each introspection past the cache (a miss) and each
  revocation, none for a cache hit; while a call is on the wire the span is
  the current one, so the HTTP client's own spans nest under it.
- No metric label and no span attribute ever carries a token, its digest or
  a secret.
- Without the extras installed, the package imports and works; asking for
  either feature says which extra to install.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import (
    ConfigurationError,
    GenAuthGuard,
    Introspector,
    RevocationError,
    SyncIntrospector,
)
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.prometheus import METRICS, IntrospectorCollector

from .wsgi_support import GatedAuthServer, gated_auth_server

SECRET = "post-secret"
CREDENTIALS = {"client_id": "post-client", "client_secret": SECRET}
ROOT = Path(__file__).resolve().parent.parent
FAILURES = 'genauth_guard_introspection_failures_total{{introspector="api",reason="{reason}"}}'


@pytest.fixture
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("let in")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def forbidden(tokens: list[str]) -> list[str]:
    """What must never leave the process: the tokens, their key digests, the secret."""
    digests = [hashlib.sha256(token.encode()).hexdigest() for token in tokens]
    return [*tokens, *digests, SECRET]


def assert_nothing_secret(text: str, tokens: list[str]) -> None:
    leaked = [value for value in forbidden(tokens) if value in text]
    assert not leaked, "a token, digest or secret left the process"


# ---------------------------------------------------------------- Prometheus


def test_the_collector_exposes_stats_in_the_text_format(gated: GatedAuthServer) -> None:
    server = gated.server
    alice, gone = server.mint("alice"), server.mint("gone")
    server.revoke(gone)
    api = Introspector(gated.endpoint(), **CREDENTIALS)  # type: ignore[arg-type]
    with SyncIntrospector(gated.endpoint(), **CREDENTIALS) as admin:  # type: ignore[arg-type]
        app = GenAuthGuard(Starlette(routes=[Route("/", ok)]), introspector=api)
        with serve_in_thread(app) as url:
            statuses = [httpx.get(url, headers=bearer(t)).status_code for t in (alice,) * 3]
            statuses.append(httpx.get(url, headers=bearer(gone)).status_code)
            with gated.failing(503):
                statuses.append(httpx.get(url, headers=bearer(server.mint("carol"))).status_code)
        assert admin.introspect(alice).active
        registry = CollectorRegistry()
        registry.register(IntrospectorCollector({"api": api, "admin": admin}))
        text = generate_latest(registry).decode()
    assert statuses == [200, 200, 200, 401, 503]
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    expected = {
        'genauth_guard_cache_hits_total{introspector="api"}': 2,
        'genauth_guard_cache_misses_total{introspector="api"}': 3,
        'genauth_guard_coalesced_total{introspector="api"}': 0,
        'genauth_guard_introspection_call_seconds_count{introspector="api"}': 3,
        'genauth_guard_inactive_answers_total{introspector="api"}': 1,
        FAILURES.format(reason="server_unavailable"): 1,
        FAILURES.format(reason="invalid_client"): 0,
        'genauth_guard_cache_entries{introspector="api"}': 2,
        'genauth_guard_introspections_in_flight{introspector="api"}': 0,
        'genauth_guard_cache_misses_total{introspector="admin"}': 1,
        'genauth_guard_cache_hits_total{introspector="admin"}': 0,
    }
    assert {name: samples[name] for name in expected} == expected
    assert samples['genauth_guard_introspection_call_seconds_sum{introspector="api"}'] > 0
    for name in METRICS:  # every documented metric is there, for both introspectors
        assert any(sample.startswith(name) for sample in samples), name
    assert_nothing_secret(text, [alice, gone])


def test_the_collector_refuses_what_it_cannot_expose() -> None:
    introspector = Introspector("https://as.example/introspect", **CREDENTIALS)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="short printable name"):
        IntrospectorCollector({"": introspector})
    with pytest.raises(ConfigurationError, match="reads stats"):
        IntrospectorCollector({"api": object()})  # type: ignore[dict-item]
    registry = CollectorRegistry()
    registry.register(IntrospectorCollector(introspector))
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(IntrospectorCollector(introspector))  # one collector per registry


# ---------------------------------------------------------------- OpenTelemetry


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def attributes_text(finished: tuple[ReadableSpan, ...]) -> str:
    parts: list[str] = []
    for span in finished:
        parts += [span.name, str(span.status.description)]
        parts += [f"{key}={value!s}" for key, value in (span.attributes or {}).items()]
        parts += [str(event.attributes) for event in span.events]
    return "\n".join(parts)


@pytest.mark.anyio
async def test_a_miss_is_one_span_a_hit_none_and_the_call_nests_under_it(
    gated: GatedAuthServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    current_during_call: list[Any] = []

    async def record(request: httpx.Request) -> None:
        current_during_call.append(trace.get_current_span().get_span_context().span_id)

    token = gated.server.mint("alice")
    async with (
        httpx.AsyncClient(event_hooks={"request": [record]}) as client,
        Introspector(
            gated.endpoint(),
            tracer_provider=provider,
            http_client=client,
            **CREDENTIALS,  # type: ignore[arg-type]
        ) as introspector,
    ):
        assert (await introspector.introspect(token)).sub == "alice"
        assert len(exporter.get_finished_spans()) == 1
        for _ in range(3):
            await introspector.introspect(token)  # hits: no span
        finished = exporter.get_finished_spans()
    assert len(finished) == 1
    span = finished[0]
    assert span.name == "genauth_guard.introspect"
    assert span.kind is trace.SpanKind.CLIENT
    assert dict(span.attributes or {}) == {
        "server.address": "127.0.0.1",
        "server.port": int(gated.url.rsplit(":", 1)[1]),
        "genauth_guard.cache_level": "miss",
        "genauth_guard.attempts": 1,
        "http.response.status_code": 200,
        "genauth_guard.outcome": "active",
    }
    assert current_during_call == [span.context.span_id]  # the HTTP call ran inside it
    assert_nothing_secret(attributes_text(finished), [token])


def test_failures_and_revocations_are_spans_with_safe_attributes(
    gated: GatedAuthServer, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    server = gated.server
    alice, bob = server.mint("alice"), server.mint("bob")
    endpoint = gated.endpoint()
    with SyncIntrospector(
        endpoint,
        revocation_endpoint=endpoint.replace("introspection", "revocation"),
        tracer_provider=provider,
        **CREDENTIALS,  # type: ignore[arg-type]
    ) as introspector:
        with gated.failing(503), pytest.raises(Exception, match="unavailable"):
            introspector.introspect(alice)
        introspector.revoke(bob)
        assert not introspector.introspect(bob).active
    with (
        SyncIntrospector(
            endpoint,
            revocation_endpoint=endpoint.replace("introspection", "no-such-endpoint"),
            tracer_provider=provider,
            **CREDENTIALS,  # type: ignore[arg-type]
        ) as misconfigured,
        pytest.raises(RevocationError),
    ):
        misconfigured.revoke(alice)  # 404: not confirmed
    failed, revoked, inactive, refused = exporter.get_finished_spans()
    assert failed.name == "genauth_guard.introspect"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "AuthorizationServerUnavailable"
    assert failed.attributes["genauth_guard.failure_reason"] == "server_unavailable"
    assert failed.attributes["http.response.status_code"] == 503
    assert revoked.name == "genauth_guard.revoke"
    assert (
        revoked.attributes is not None and revoked.attributes["genauth_guard.outcome"] == "revoked"
    )
    assert inactive.attributes is not None
    assert inactive.attributes["genauth_guard.outcome"] == "inactive"
    assert refused.name == "genauth_guard.revoke"
    assert refused.status.status_code is trace.StatusCode.ERROR
    assert refused.attributes is not None and refused.attributes["error.type"] == "RevocationError"
    assert refused.attributes["http.response.status_code"] == 404
    assert_nothing_secret(attributes_text((failed, revoked, inactive, refused)), [alice, bob])


# ---------------------------------------------------------------- without the extras


WITHOUT_EXTRAS = """
import sys
sys.modules["opentelemetry"] = None  # import opentelemetry... raises ImportError
sys.modules["prometheus_client"] = None
import genauth_guard, genauth_guard.prometheus
from genauth_guard import ConfigurationError, SyncIntrospector
from genauth_guard.dev.server import DevAuthServer, DevClient
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.prometheus import IntrospectorCollector

server = DevAuthServer([DevClient("post-client", "post-secret", "client_secret_post")])
with serve_in_thread(server.app) as url:
    token = server.mint("alice")
    options = {"client_id": "post-client", "client_secret": "post-secret"}
    with SyncIntrospector(url + "/oidc/token/introspection", **options) as introspector:
        assert introspector.introspect(token).sub == "alice"
        assert introspector.stats().misses == 1
        for make in (
            lambda: SyncIntrospector(url + "/oidc/token/introspection",
                                     tracer_provider=object(), **options),
            lambda: IntrospectorCollector(introspector),
        ):
            try:
                make()
            except ConfigurationError as exc:
                print(exc)
"""


def test_without_the_extras_everything_works_and_asking_names_the_extra() -> None:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(WITHOUT_EXTRAS)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    said = result.stdout.splitlines()
    assert len(said) == 2
    assert "pip install 'genauth-guard[otel]'" in said[0]
    assert "pip install 'genauth-guard[prometheus]'" in said[1]
