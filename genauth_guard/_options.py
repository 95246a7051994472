"""The keyword options of the introspectors: declared, defaulted and described once.

Every constructor (``Introspector``, ``SyncIntrospector``, ``from_genauth``,
``from_env``, ``from_discovery``) takes these, typed by the ``TypedDict``s
below; ``DEFAULTS`` holds every default; ``docs/configuration.md`` explains
each. The flat keywords are shortcuts for the parts: ``retries`` and
``retry_backoff`` build a ``RetryPolicy``, ``circuit_breaker_*`` a
``CircuitBreaker``, ``audience``/``issuer``/``allowed_client_ids``/
``token_type`` the ``ClaimRules``, ``cache_*`` the ``TokenCache``; or pass the
part itself (``retry=``, ``circuit_breaker=``, ``claim_rules=``, ``cache=``),
not both.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Required, TypedDict

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH
from ._protocol import DEFAULT_MAX_RESPONSE_BYTES

if TYPE_CHECKING:
    from ._cache import TokenCache
    from ._resilience import CircuitBreaker, RetryPolicy
    from ._shared import SharedCache
    from ._validation import ClaimRules


class TuningOptions(TypedDict, total=False):
    """Options every constructor takes, ``from_genauth``/``from_env``/``from_discovery`` too."""

    cache_ttl: float  # longest life of an active answer (never past its exp)
    negative_cache_ttl: float  # life of an inactive answer; 0: not kept
    cache_maxsize: int  # answers kept per kind (active, inactive); LRU
    timeout: float  # seconds for one call, connect to last byte
    token_type_hint: str | None  # sent with each request; None: omitted
    leeway: float  # clock skew allowed on exp/nbf
    max_response_bytes: int  # longest answer read
    max_token_length: int  # longest token sent
    allow_insecure_http: bool  # http:// to a host that is not loopback
    max_concurrent_introspections: int  # calls at once (not waiting requests)
    queue_timeout: float  # seconds a call waits for a slot, then 503
    max_queued_introspections: int  # calls waiting for a slot; more: 503 at once
    retries: int  # extra attempts after a connection failure or a 502/503/504
    retry_backoff: float  # first backoff (jittered, doubling)
    circuit_breaker_threshold: int  # failures in a row that pause calls; 0: never
    circuit_breaker_cooldown: float  # seconds of the pause
    serve_stale_on_error: bool  # answer from an unexpired old answer while the server fails
    audience: str | Iterable[str] | None  # claim rule: aud must name one of these
    issuer: str | Iterable[str] | None  # claim rule: iss must be one of these
    allowed_client_ids: Iterable[str] | None  # claim rule: client_id must be one of these
    token_type: str | None  # claim rule: token_type must equal it (ignoring case)
    userinfo_endpoint: str | None  # fetch the user's profile once per active token
    require_userinfo: bool  # a profile failure fails the request (503) instead of None
    # Signed messages (extra genauth-guard[jose]; docs/signed-messages.md):
    client_private_key: str | bytes | Mapping[str, Any] | None  # private_key_jwt: PEM or JWK
    client_key_id: str | None  # the assertion's kid header (default: the JWK's kid)
    client_assertion_alg: str | None  # default from the key (RS256, ES256...), HS256 for secrets
    client_assertion_audience: str | None  # the assertion's aud (default: the issuer, or the URL)
    jwt_response: bool  # RFC 9701: ask for, and accept only, signed JWT answers
    jwks_uri: str | None  # the server's keys for jwt_response (discovery/GenAuth fill it)
    jwt_response_issuer: str | None  # the iss signed answers must carry (default: the issuer)
    tracer_provider: Any  # OpenTelemetry TracerProvider for spans; None: the global one
    # The parts themselves (instead of their flat keywords above):
    cache: TokenCache
    shared_cache: SharedCache | None  # a second level several processes share (RedisCache)
    retry: RetryPolicy
    circuit_breaker: CircuitBreaker
    claim_rules: ClaimRules


class IntrospectorOptions(TuningOptions, total=False):
    """The keyword options of ``Introspector`` and ``SyncIntrospector``."""

    client_id: Required[str]
    client_secret: str | None
    auth_method: str
    revocation_endpoint: str | None
    revocation_auth_method: str | None
    authorization_server_issuer: str | None  # its issuer id; from_genauth/from_discovery set it


DEFAULTS: Final[dict[str, Any]] = {
    "client_secret": None,
    "auth_method": "client_secret_post",
    "revocation_endpoint": None,
    "revocation_auth_method": None,  # the introspection method
    "authorization_server_issuer": None,
    "cache_ttl": 300.0,
    "negative_cache_ttl": 10.0,
    "cache_maxsize": 10_000,
    "timeout": 5.0,
    "token_type_hint": "access_token",
    "leeway": 0.0,
    "max_response_bytes": DEFAULT_MAX_RESPONSE_BYTES,
    "max_token_length": DEFAULT_MAX_TOKEN_LENGTH,
    "allow_insecure_http": False,
    "max_concurrent_introspections": 64,
    # A cold start's burst of new tokens is worked through at the transport's
    # speed (docs/performance.md); a flood beyond the queue is refused at once.
    "queue_timeout": 5.0,
    "max_queued_introspections": 4096,
    "retries": 1,
    "retry_backoff": 0.1,
    "circuit_breaker_threshold": 5,
    "circuit_breaker_cooldown": 5.0,
    "serve_stale_on_error": False,
    "audience": None,
    "issuer": None,
    "allowed_client_ids": None,
    "token_type": None,
    "userinfo_endpoint": None,
    "require_userinfo": False,
    "client_private_key": None,
    "client_key_id": None,
    "client_assertion_alg": None,
    "client_assertion_audience": None,
    "jwt_response": False,
    "jwks_uri": None,
    "jwt_response_issuer": None,
    "tracer_provider": None,
    "cache": None,
    "shared_cache": None,
    "retry": None,
    "circuit_breaker": None,
    "claim_rules": None,
}
"""Every option's default (``client_id`` has none: it is required)."""

PARTS: Final[dict[str, tuple[str, ...]]] = {
    "cache": ("cache_ttl", "negative_cache_ttl", "cache_maxsize"),
    "retry": ("retries", "retry_backoff"),
    "circuit_breaker": ("circuit_breaker_threshold", "circuit_breaker_cooldown"),
    "claim_rules": ("audience", "issuer", "allowed_client_ids", "token_type"),
}
"""Each part, and the flat keywords that are its shortcut."""
