"""The keyword options of the introspectors, typed once for every constructor."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Required, TypedDict


class TuningOptions(TypedDict, total=False):
    """Options every constructor takes, ``from_genauth``/``from_env``/``from_discovery`` too."""

    cache_ttl: float
    negative_cache_ttl: float
    cache_maxsize: int
    timeout: float
    token_type_hint: str | None
    leeway: float
    max_response_bytes: int
    max_token_length: int
    allow_insecure_http: bool
    max_concurrent_introspections: int
    queue_timeout: float
    retries: int
    retry_backoff: float
    circuit_breaker_threshold: int
    circuit_breaker_cooldown: float
    serve_stale_on_error: bool
    audience: str | Iterable[str] | None
    issuer: str | Iterable[str] | None
    allowed_client_ids: Iterable[str] | None
    token_type: str | None


class IntrospectorOptions(TuningOptions, total=False):
    """The keyword options of ``Introspector`` and ``SyncIntrospector`` (typed once)."""

    client_id: Required[str]
    client_secret: str | None
    auth_method: str
    revocation_endpoint: str | None
    revocation_auth_method: str | None
