"""What both introspectors share: construction from options, the parts, the cached lookup.

``IntrospectorBase`` checks the options once (``_settings``), builds the parts
(cache, retry policy, circuit breaker, claim rules, client authentication)
unless they were passed in, and hands them to one ``IntrospectionFlow``.
The drivers (``Introspector``, ``SyncIntrospector``) add the I/O only: they
run that flow's steps and keep their own single flight. The constructors
``from_genauth``, ``from_env`` and ``from_discovery`` turn GenAuth's names,
environment variables or a discovery document into the same options.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Self, Unpack

import httpx

from ._bearer import check_token
from ._cache import CachedAnswer, TokenCache
from ._client_auth import check_auth_method, client_authentication
from ._environment import settings_from_env
from ._flow import IntrospectionFlow
from ._flow_settings import FlowSettings
from ._genauth import DEFAULT_AUTH_METHOD, DEFAULT_PROTOCOL, genauth_endpoints, genauth_settings
from ._jwt_response import signed_answers
from ._option_checks import (
    check_signing_options_used,
    checked_options,
    credentials_from,
    userinfo_endpoint_of,
)
from ._options import IntrospectorOptions, TuningOptions
from ._resilience import CircuitBreaker, RetryPolicy
from ._settings import ClientSettings, check_endpoint_url, non_negative, positive_int
from ._shared import CacheKeys, check_shared_cache
from ._stats import Counters, IntrospectorStats
from ._telemetry import Tracing
from ._token_info import TokenInfo
from ._validation import ClaimRules
from .discovery import ServerMetadata, discovered_settings, fetch_metadata
from .errors import ConfigurationError


class IntrospectorBase:
    """Options, parts and the cached lookup shared by ``Introspector`` and ``SyncIntrospector``.

    ``introspection_endpoint``: the RFC 7662 endpoint URL (https, or http on
    loopback). ``options``: see ``_options.TuningOptions`` and
    ``docs/configuration.md``; ``client_id`` is required.
    """

    server_metadata: ServerMetadata | None = None
    """The discovery document the introspector was built from (``from_discovery``), if any."""

    def __init__(self, introspection_endpoint: str, **options: Unpack[IntrospectorOptions]) -> None:
        o = checked_options(options)
        insecure = bool(o["allow_insecure_http"])
        self.allow_insecure_http = insecure
        self.introspection_endpoint = check_endpoint_url(
            introspection_endpoint, "introspection_endpoint", allow_insecure_http=insecure
        )
        credentials = credentials_from(o)
        self.auth = client_authentication(o["auth_method"], credentials)
        revocation = o["revocation_endpoint"]
        self.revocation_endpoint = (
            None
            if revocation is None
            else check_endpoint_url(revocation, "revocation_endpoint", allow_insecure_http=insecure)
        )
        revocation_method = o["revocation_auth_method"] or self.auth.method
        self.revocation_auth = self.auth
        if self.revocation_endpoint is not None:
            self.revocation_auth = client_authentication(
                revocation_method, credentials, option="revocation_auth_method"
            )
        elif o["revocation_auth_method"] is not None:
            check_auth_method(o["revocation_auth_method"], "revocation_auth_method")
        userinfo = o["userinfo_endpoint"]
        self.userinfo_endpoint = (
            None
            if userinfo is None
            else check_endpoint_url(userinfo, "userinfo_endpoint", allow_insecure_http=insecure)
        )
        self.require_userinfo = bool(o["require_userinfo"])
        check_signing_options_used(o, {self.auth.method, self.revocation_auth.method})
        self.jwks, jwt_response_issuer = signed_answers(
            o["jwt_response"],
            o["jwks_uri"],
            o["jwt_response_issuer"],
            credentials.issuer,
            allow_insecure_http=insecure,
        )
        self.token_type_hint = o["token_type_hint"] or None
        self.timeout = non_negative("timeout", o["timeout"])
        if self.timeout == 0:
            raise ConfigurationError("timeout=0 would fail every call; give seconds, e.g. 5.0.")
        self.leeway = non_negative("leeway", o["leeway"])
        self.max_response_bytes = positive_int("max_response_bytes", o["max_response_bytes"])
        self.max_token_length = positive_int("max_token_length", o["max_token_length"])
        self.max_concurrent_introspections = positive_int(
            "max_concurrent_introspections", o["max_concurrent_introspections"]
        )
        self.queue_timeout = non_negative("queue_timeout", o["queue_timeout"])
        self.max_queued_introspections = positive_int(
            "max_queued_introspections", o["max_queued_introspections"], least=0
        )
        self.serve_stale_on_error = bool(o["serve_stale_on_error"])
        self.cache: TokenCache = (
            o["cache"]
            if o["cache"] is not None
            else TokenCache(
                maxsize=positive_int("cache_maxsize", o["cache_maxsize"]),
                ttl=non_negative("cache_ttl", o["cache_ttl"]),
                negative_ttl=non_negative("negative_cache_ttl", o["negative_cache_ttl"]),
                leeway=self.leeway,
                keep_stale=self.serve_stale_on_error,
            )
        )
        retry: RetryPolicy = (
            o["retry"]
            if o["retry"] is not None
            else RetryPolicy(
                positive_int("retries", o["retries"], least=0),
                non_negative("retry_backoff", o["retry_backoff"]),
            )
        )
        self.breaker: CircuitBreaker = o["circuit_breaker"]
        if self.breaker is None:
            self.breaker = CircuitBreaker(
                positive_int("circuit_breaker_threshold", o["circuit_breaker_threshold"], least=0),
                non_negative("circuit_breaker_cooldown", o["circuit_breaker_cooldown"]),
            )
        rules: ClaimRules = o["claim_rules"]
        if rules is None:
            rules = ClaimRules.from_options(
                audience=o["audience"],
                issuer=o["issuer"],
                allowed_client_ids=o["allowed_client_ids"],
                token_type=o["token_type"],
            )
        self.shared_cache = check_shared_cache(o["shared_cache"])
        # Keys bind answers to the endpoint and the client; signed and unsigned
        # answers never share entries (in a shared cache neither).
        mode = () if self.jwks is None else ("jwt", self.jwks.uri, jwt_response_issuer or "")
        bound_to = (self.introspection_endpoint, self.auth.client_id, *mode)
        self.keys = (
            CacheKeys(*bound_to)
            if self.shared_cache is None
            else self.shared_cache.cache_keys(*bound_to)
        )
        self._counters = Counters()
        self.flow = IntrospectionFlow(
            FlowSettings(
                introspection_endpoint=self.introspection_endpoint,
                revocation_endpoint=self.revocation_endpoint,
                auth=self.auth,
                revocation_auth=self.revocation_auth,
                token_type_hint=self.token_type_hint,
                leeway=self.leeway,
                max_concurrent_introspections=self.max_concurrent_introspections,
                queue_timeout=self.queue_timeout,
                serve_stale_on_error=self.serve_stale_on_error,
                timeout=self.timeout,
                userinfo_endpoint=self.userinfo_endpoint,
                require_userinfo=self.require_userinfo,
                jwt_response_issuer=jwt_response_issuer,
            ),
            cache=self.cache,
            keys=self.keys,
            shared=self.shared_cache is not None,
            retry=retry,
            breaker=self.breaker,
            rules=rules,
            jwks=self.jwks,
            counters=self._counters,
            tracing=Tracing(
                o["tracer_provider"],
                introspection_endpoint=self.introspection_endpoint,
                revocation_endpoint=self.revocation_endpoint,
            ),
        )
        self.retry = retry
        self.rules = rules
        self._timeout_extension = httpx.Timeout(self.timeout).as_dict()

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    @property
    def auth_method(self) -> str:
        return self.auth.method

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.introspection_endpoint!r}, "
            f"client_id={self.client_id!r}, auth_method={self.auth_method!r})"
        )

    # ------------------------------------------------------------ the cached path

    def _key(self, token: str, what: str = "invalidate") -> bytes:
        if not isinstance(token, str) or not token:
            raise TypeError(f"{what}() takes the token as a non-empty str")
        return self.keys.token(token)

    def _subject(self, sub: str) -> bytes:
        if not isinstance(sub, str) or not sub:
            raise TypeError(
                "invalidate_subject() takes the subject (TokenInfo.identity: sub, or username "
                "when the server sends no sub) as a non-empty str"
            )
        return self.keys.subject(sub)

    def _lookup(self, token: str) -> tuple[bytes, TokenInfo | None]:
        """``token``'s cache key and cached answer (``None`` on a miss).

        On a miss, what cannot be a bearer token is refused before any call
        (``InvalidRequest``: RFC 6750 b64token, ``max_token_length``). The
        middlewares check the same when they extract the token; this covers
        direct callers, and costs a hit only a type check.
        """
        if not isinstance(token, str) or not token:
            raise TypeError("introspect() takes the access token as a non-empty str")
        try:
            key = self.keys.token(token)
        except UnicodeEncodeError:  # lone surrogates: no token, and no digest either
            check_token(token, self.max_token_length)
            raise
        cached = self.cache.get(key)
        if cached is None:
            check_token(token, self.max_token_length)
        else:
            self._counters.hits += 1
        return key, cached

    def _cached_path(self) -> Callable[[bytes], CachedAnswer | None]:
        """The guards' lookup of a cached answer by the token's raw bytes (``TokenCache.finder``).

        The token is not checked first, and needs not be: only a token that
        passed ``check_token`` (and ``max_token_length``) was ever asked
        about, hence stored, and no other bytes can have its digest. A
        ``None`` sends the request the long way (``introspect``), which
        decides the rest: malformed tokens, inactive answers, misses.
        """
        prefix, secret = self.keys.token_digest()
        return self.cache.finder(prefix, secret, self._counters, self.max_token_length)

    def _in_flight(self) -> int:
        """Introspections running now (the drivers know their flights)."""
        return 0

    def stats(self) -> IntrospectorStats:
        """What this introspector has done since it was made (``IntrospectorStats``).

        Cheap to take (a copy of a few counters and the cache's size) and
        safe from any thread; scrape it as often as you like.
        """
        return self._counters.snapshot(cache_size=len(self.cache), in_flight=self._in_flight())

    def clear(self) -> None:
        """Forget every locally cached answer."""
        self.cache.clear()

    def _describe(self) -> dict[str, Any]:
        """Settings without secrets, for the CLI and diagnostics."""
        return {
            "introspection_endpoint": self.introspection_endpoint,
            "client_id": self.client_id,
            "auth_method": self.auth_method,
            "revocation_endpoint": self.revocation_endpoint,
            "revocation_auth_method": self.revocation_auth.method,
            "cache_ttl": self.cache.ttl,
            "negative_cache_ttl": self.cache.negative_ttl,
            "timeout": self.timeout,
            "max_concurrent_introspections": self.max_concurrent_introspections,
            "queue_timeout": self.queue_timeout,
            "max_queued_introspections": self.max_queued_introspections,
            "retries": self.retry.retries,
            "circuit_breaker_threshold": self.breaker.threshold,
            "serve_stale_on_error": self.serve_stale_on_error,
            "jwt_response": self.jwks is not None,
            "jwks_uri": None if self.jwks is None else self.jwks.uri,
        }

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_genauth(
        cls,
        app_id: str,
        secret: str | None,
        app_host: str,
        protocol: str = DEFAULT_PROTOCOL,
        introspection_endpoint_auth_method: str = DEFAULT_AUTH_METHOD,
        revocation_endpoint_auth_method: str | None = None,
        *,
        userinfo: bool = False,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector for a GenAuth application, named the way GenAuth's SDK names it.

        ``app_host`` is the application's host (``https://YOUR_DOMAIN.genauth.ai``),
        ``protocol`` ``oidc`` or ``oauth``; the endpoints are
        ``{app_host}/{protocol}/token/introspection`` and ``.../revocation``.
        ``secret`` may be ``None`` only with ``none`` methods (a public client).
        ``revocation_endpoint_auth_method`` defaults to the introspection one.
        ``http_client``: this driver's kind of httpx client, if you manage it;
        ``options``: the constructor's tuning options (``cache_ttl``, ``timeout``...).
        ``userinfo=True``: read each token's profile from ``{app_host}/{protocol}/me``
        into ``TokenInfo.userinfo``.
        """
        if userinfo:
            options = {
                **options,
                "userinfo_endpoint": genauth_endpoints(app_host, protocol).userinfo,
            }
        settings = genauth_settings(
            app_id,
            secret,
            app_host,
            protocol,
            introspection_endpoint_auth_method,
            revocation_endpoint_auth_method,
            allow_insecure_http=options.get("allow_insecure_http", False),
            private_key=options.get("client_private_key") is not None,
        )
        return cls._from_settings(settings, http_client, options)

    @classmethod
    def from_env(
        cls,
        prefix: str = "GENAUTH_",
        *,
        environ: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector configured by ``{prefix}*`` environment variables.

        ``GENAUTH_APP_ID``, ``GENAUTH_APP_SECRET``, ``GENAUTH_APP_HOST``,
        ``GENAUTH_PROTOCOL``... (``docs/configuration.md`` lists them all); unset ones take
        ``from_genauth``'s defaults. ``options`` are defaults the environment
        overrides, so operators can tune a deployed app without a code change.
        ``environ`` replaces ``os.environ`` (tests, secrets loaded elsewhere).
        """
        settings, from_environment = settings_from_env(
            os.environ if environ is None else environ,
            prefix,
            allow_insecure_http=options.get("allow_insecure_http", False),
        )
        return cls._from_settings(settings, http_client, {**options, **from_environment})

    @classmethod
    def from_discovery(
        cls,
        issuer_or_metadata_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: str | None = None,
        revocation_auth_method: str | None = None,
        metadata_client: httpx.Client | None = None,
        userinfo: bool = False,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector configured by the server's metadata (RFC 8414 / OpenID Discovery).

        ``issuer_or_metadata_url``: the issuer (GenAuth: ``{app_host}/oidc``)
        or the document's URL. The document must name that issuer. Without
        ``auth_method``, one the server advertises is chosen. The document is
        fetched once (synchronously: this runs at start-up, maybe before an
        event loop exists) and cached; ``metadata_client`` is an
        ``httpx.Client`` for that fetch. Raises ``ConfigurationError`` for a
        wrong or refused document, ``AuthorizationServerUnavailable`` when the
        server cannot be reached (retry the start-up later).
        """
        metadata = fetch_metadata(
            issuer_or_metadata_url,
            timeout=options.get("timeout", 5.0),
            allow_insecure_http=options.get("allow_insecure_http", False),
            http_client=metadata_client,
        )
        settings = discovered_settings(
            metadata,
            client_id,
            client_secret,
            auth_method,
            revocation_auth_method,
            private_key=options.get("client_private_key") is not None,
        )
        if userinfo:
            options = {**options, "userinfo_endpoint": userinfo_endpoint_of(metadata)}
        introspector = cls._from_settings(settings, http_client, options)
        introspector.server_metadata = metadata
        return introspector

    @classmethod
    def _from_settings(
        cls,
        settings: ClientSettings,
        http_client: httpx.AsyncClient | httpx.Client | None,
        options: TuningOptions,
    ) -> Self:
        merged: dict[str, Any] = dict(options)
        if http_client is not None:
            merged["http_client"] = http_client
        if options.get("jwt_response") is True and options.get("jwks_uri") is None:
            merged["jwks_uri"] = settings.jwks_uri  # discovered, or GenAuth's
        return cls(
            settings.introspection_endpoint,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            auth_method=settings.auth_method,
            revocation_endpoint=settings.revocation_endpoint,
            revocation_auth_method=settings.revocation_auth_method,
            authorization_server_issuer=settings.issuer,
            **merged,
        )
