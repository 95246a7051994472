"""The introspection sequence, written once with no I/O, run by both drivers.

Like httpx's auth flows (``httpx/_auth.py``), each sequence is a generator:
it yields a *step* — take a call slot, send this request, wait this long,
read or write the shared cache — and the driver performs it and sends the
outcome back in (or throws the exception it raised). ``Introspector`` does
each step with asyncio, ``SyncIntrospector`` with threads; everything that
is decided (breaker, retries, parsing, claim rules, what is cached and for
how long, stale service, logging) is decided here, in one place.

The sequence for a token missing from the local cache::

    shared cache (answer | lead | follow) -> breaker -> call slot
        -> attempt (send, parse, rules) -> retry? -> release
        -> store (local, shared, unlock) | unlock, give up

The steps are in ``_steps``; the decisions about the shared level (its
breaker, the lock across processes, messages from other processes) in
``_shared_flow``. Single flight within a process and the local cache lookup
stay in the drivers: they run before any flow starts and are the cached
path, which must cost a digest and a lookup, not a generator.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

import httpx

from . import _jwt_response as jwt_response
from ._cache import TokenCache, key_hint
from ._flow_settings import FlowSettings
from ._jwks import Fetch, JwksCache
from ._logging import FailureLog, profile_failed, stale_served, token_rejected
from ._protocol import (
    parse_introspection_response,
    parse_userinfo_response,
    token_request,
    transport_error,
    unexpected_failure,
    userinfo_request,
)
from ._resilience import CircuitBreaker, RetryPolicy, is_connection_failure, too_busy
from ._revocation import revocation
from ._shared import LOCK_MARGIN_SECONDS, CacheKeys
from ._shared_flow import RecentInvalidations, SharedLevel
from ._stats import Counters
from ._steps import Answer, Exchange, Flow, TakeSlot, Wait
from ._telemetry import NoSpan, Tracing, traced
from ._token_info import TokenInfo
from ._validation import ClaimRules
from .errors import (
    AuthorizationServerUnavailable,
    IntrospectionError,
    InvalidIntrospectionResponse,
)

if TYPE_CHECKING:
    from ._jose import PublicKey


class IntrospectionFlow:
    """The sequences of one introspector, over its parts.

    ``cache`` (local, always), ``keys`` (how tokens and subjects become
    digests), ``shared`` (whether a second level is there), ``retry``,
    ``breaker`` and ``rules`` are the components the introspector was built
    with; ``jwks`` the server's signing keys when answers are signed JWTs
    (RFC 9701); the flow holds the decisions between them. ``counters`` are
    the introspector's (``stats()``), ``tracing`` its spans.
    """

    def __init__(
        self,
        settings: FlowSettings,
        *,
        cache: TokenCache,
        keys: CacheKeys,
        shared: bool,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        rules: ClaimRules,
        jwks: JwksCache | None = None,
        counters: Counters | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        if (jwks is None) != (settings.jwt_response_issuer is None):
            raise ValueError("signed answers need both a JWKS and an issuer")
        self.counters = Counters() if counters is None else counters
        self.tracing = tracing or Tracing(introspection_endpoint=settings.introspection_endpoint)
        self.jwks = jwks
        self.settings = settings
        self.cache = cache
        self.keys = keys
        self.retry = retry
        self.breaker = breaker
        self.rules = rules
        self.failures = FailureLog()
        # The longest one introspection can take anywhere: a lock across
        # processes never outlives it, an invalidation is remembered that long.
        longest = settings.queue_timeout + retry.worst_case(settings.timeout) + LOCK_MARGIN_SECONDS
        self.invalidations = RecentInvalidations(longest)
        self.shared: SharedLevel | None = None
        if shared:
            self.shared = SharedLevel(
                cache=cache,
                keys=keys,
                rules=rules,
                invalidations=self.invalidations,
                lock_ttl=longest,
                wait_budget=settings.timeout,
                require_userinfo=settings.userinfo_endpoint is not None
                and settings.require_userinfo,
            )

    # ------------------------------------------------------------ introspection

    def introspection(self, key: bytes, token: str) -> Flow:
        """The answer for ``token`` (whose local cache lookup missed), or ``IntrospectionError``.

        Counted as a miss, and traced as one span (``_telemetry``).
        """
        self.counters.misses += 1
        span = self.tracing.introspection()
        sequence = self._introspection(key, token, span)
        return (yield from traced(span, sequence, _outcome))

    def _introspection(self, key: bytes, token: str, span: NoSpan) -> Flow:
        started = time.monotonic()
        handle: str | None = None
        if self.shared is not None:
            found, handle = yield from self.shared.answer(key, started)
            if found is not None:
                self.counters.shared_hits += 1
                span.set("genauth_guard.cache_level", "shared")
                return found
        span.set("genauth_guard.cache_level", "miss")
        try:
            try:
                self.breaker.check()
            except IntrospectionError:
                self.counters.shed += 1
                raise
            try:
                taken = yield TakeSlot(self.settings.queue_timeout)
            except BaseException:
                self.breaker.release()
                raise
            if not taken:
                self.breaker.release()
                self.counters.shed += 1
                raise too_busy(
                    self.settings.max_concurrent_introspections, self.settings.queue_timeout
                )
            try:
                answer, info = yield from self._attempts(key, token, span)
                if info.active and self.settings.userinfo_endpoint is not None:
                    info = yield from self._with_profile(key, token, info)
                    if info.userinfo is not None:  # shared with the answer, fetched once
                        answer = replace(answer, userinfo=info.userinfo)
            except BaseException as exc:
                self.breaker.record(exc, key)
                raise
            self.breaker.record(None)
        except IntrospectionError as error:
            if self.shared is not None:
                yield from self.shared.release(key, handle)
            return self._give_up(key, error, span)
        self.failures.success()
        yield from self.store(key, answer, info, started, handle)
        return info

    def _attempts(self, key: bytes, token: str, span: NoSpan) -> Flow:
        """Ask until an answer, or until the retry policy gives up (raises the failure).

        Returns the server's answer and the answer after this introspector's
        claim rules: the shared level keeps the first, so that each reader
        applies its own rules.
        """
        attempt = 1
        counters = self.counters
        while True:
            span.set("genauth_guard.attempts", attempt)
            try:
                request = token_request(
                    self.settings.introspection_endpoint,
                    self.settings.auth,
                    token,
                    self.settings.token_type_hint,
                    accept=jwt_response.MEDIA_TYPE if self.jwks is not None else "application/json",
                )
                counters.calls += 1
                sent = time.perf_counter()
                try:
                    with span.current():  # an instrumented HTTP client's span nests under it
                        answer: Answer = yield Exchange(request)
                finally:
                    counters.call_seconds_sum += time.perf_counter() - sent
                span.set("http.response.status_code", answer.status)
                return (yield from self._read(key, answer))
            except Exception as exc:  # every failure of one attempt is judged, none escapes
                error, delay = self._judge(key, exc, attempt)
            if delay is None:
                raise error
            counters.retries += 1
            yield Wait(delay)
            attempt += 1

    def _with_profile(self, key: bytes, token: str, info: TokenInfo) -> Flow:
        """``info`` with the user's profile (OIDC userinfo), fetched once for the cache.

        Part of the same single flight and call slot as the introspection. A
        failure is the request's failure with ``require_userinfo``; without
        it, it is logged and the answer goes on without a profile.
        """
        endpoint = self.settings.userinfo_endpoint
        assert endpoint is not None
        try:
            answer: Answer = yield Exchange(userinfo_request(endpoint, token))
            profile = parse_userinfo_response(answer.status, answer.headers, answer.body, info.sub)
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, IntrospectionError)
                else transport_error("userinfo", endpoint, exc)
                if isinstance(exc, httpx.HTTPError | TimeoutError | OSError)
                else unexpected_failure("userinfo", exc)
            )
            if self.settings.require_userinfo:
                raise error from None
            profile_failed(key_hint(key), str(error))
            return info
        return replace(info, userinfo=profile)

    def _read(self, key: bytes, answer: Answer) -> Flow:
        """The server's answer and the one after the claim rules (``_parse``), after
        fetching the key a signed one needs."""
        if self.jwks is None:
            raw = self._server_answer(answer)
        else:
            signed = jwt_response.read(answer.status, answer.headers, answer.body)
            public_key = yield from self._signing_key(self.jwks, signed)
            raw = self._server_answer(answer, signed, public_key)
        return raw, self._ruled(key, raw)

    def _parse(
        self,
        key: bytes,
        answer: Answer,
        signed: jwt_response.SignedAnswer | None = None,
        public_key: PublicKey | None = None,
    ) -> TokenInfo:
        """The answer as ``TokenInfo`` with the claim rules applied; raises if there is none."""
        return self._ruled(key, self._server_answer(answer, signed, public_key))

    def _ruled(self, key: bytes, info: TokenInfo) -> TokenInfo:
        """``info`` under this introspector's claim rules (logged when one is broken)."""
        info, broken_rule = self.rules.apply(info)
        if broken_rule is not None:
            token_rejected(key_hint(key), broken_rule)
        if not info.active:
            self.counters.inactive += 1
        return info

    def _server_answer(
        self,
        answer: Answer,
        signed: jwt_response.SignedAnswer | None = None,
        public_key: PublicKey | None = None,
    ) -> TokenInfo:
        """The answer as ``TokenInfo``, before the claim rules; raises if there is none.

        Plain JSON (RFC 7662), or, when answers are signed (RFC 9701), the
        ``token_introspection`` of the JWT ``signed`` that ``public_key``
        (from the server's JWKS) verifies.
        """
        leeway = self.settings.leeway
        issuer = self.settings.jwt_response_issuer
        if issuer is None:
            info = parse_introspection_response(
                answer.status, answer.headers, answer.body, now=time.time(), leeway=leeway
            )
        else:
            if signed is None or public_key is None:
                raise ValueError("a signed answer is parsed with its verified key (_read)")
            info = jwt_response.verify(
                signed,
                public_key,
                issuer=issuer,
                client_id=self.settings.auth.client_id,
                now=time.time(),
                leeway=leeway,
            )
        return info

    def _signing_key(self, jwks: JwksCache, signed: jwt_response.SignedAnswer) -> Flow:
        """The JWKS key that must have signed ``signed``, fetching the set when the rules say."""
        found = jwks.select(signed.kid, signed.alg, time.monotonic())
        if found is Fetch.NEEDED:
            try:
                reply: Answer = yield Exchange(jwks.request())
            except Exception as exc:
                raise jwks.unreachable(exc) from None
            jwks.store(reply.status, reply.headers, reply.body, time.monotonic())
            found = jwks.select(signed.kid, signed.alg, time.monotonic(), may_fetch=False)
        if found is None:
            raise jwt_response.no_key(signed)
        return found

    def _judge(
        self, key: bytes, exc: Exception, attempt: int
    ) -> tuple[IntrospectionError, float | None]:
        """The failure ``exc`` amounts to, and the seconds to wait before a retry (or None)."""
        connection_failed = False
        if isinstance(exc, IntrospectionError):
            error = exc
        elif isinstance(exc, httpx.HTTPError | TimeoutError | OSError):
            connection_failed = is_connection_failure(exc)
            error = transport_error(
                "introspection",
                self.settings.introspection_endpoint,
                exc,
                connection_failed=connection_failed,
            )
        else:  # an answer odd enough to break something: still no answer, never a 500
            error = unexpected_failure("introspection", exc)
        delay = self.retry.delay(attempt, error, connection_failed=connection_failed)
        if delay is not None:
            self.failures.retrying(str(error), key_hint(key), attempt, delay)
        return error, delay

    def _give_up(self, key: bytes, error: IntrospectionError, span: NoSpan) -> TokenInfo:
        """Log the failure; return a stale answer if allowed and there is one, else raise.

        Stale answers stand in only while the server is unavailable or
        talking nonsense, never when it refused us (4xx): that needs fixing.
        """
        self.failures.failure(str(error), key_hint(key), error.reason)
        self.counters.failed(error.reason)
        if self.settings.serve_stale_on_error and isinstance(
            error, AuthorizationServerUnavailable | InvalidIntrospectionResponse
        ):
            stale = self.cache.get_stale(key)
            if stale is not None:
                stale_served(key_hint(key))
                self.counters.stale_served += 1
                span.set("genauth_guard.cache_level", "stale")
                span.set("genauth_guard.failure_reason", error.reason)
                return stale
        raise error

    # ------------------------------------------------------------ the two cache levels

    def store(
        self,
        key: bytes,
        answer: TokenInfo,
        info: TokenInfo,
        started: float,
        handle: str | None = None,
    ) -> Flow:
        """Keep ``info`` locally and the server's ``answer`` in the shared cache (cache rule).

        Not at all if ``key`` or its subject was invalidated since the flight
        ``started``: the answer predates the invalidation (its callers still
        get it, as they asked before). The lock, if held, is released either way.
        """
        subject = self.keys.subject(answer.identity) if answer.identity else None
        with self.invalidations.lock:
            invalidated = self.invalidations.since(started, key, subject)
            if not invalidated:
                self.cache.put(key, info, subject=subject)
        if self.shared is None:
            return
        if invalidated:
            yield from self.shared.release(key, handle)
            return
        ttl = self.cache.lifetime(info, time.time())
        yield from self.shared.store(key, answer, ttl, subject, handle)

    def forget(self, key: bytes) -> Flow:
        """Drop ``key`` from both levels and every process (``invalidate``, a confirmed revocation).

        Raises ``SharedCacheError`` after the local drop if the other
        processes could not be told.
        """
        with self.invalidations.lock:
            self.invalidations.note(key)
            self.cache.discard(key)
        if self.shared is not None:
            yield from self.shared.forget(key)

    def forget_subject(self, subject: bytes) -> Flow:
        """Drop every answer of one subject, in both levels and every process.

        Raises ``SharedCacheError`` after the local drop if the other
        processes could not be told.
        """
        with self.invalidations.lock:
            self.invalidations.note(subject)
            self.cache.discard_subject(subject)
        if self.shared is not None:
            yield from self.shared.forget_subject(subject)

    # ------------------------------------------------------------ revocation (RFC 7009)

    def revocation(self, key: bytes, token: str, token_type_hint: str | None) -> Flow:
        """Revoke ``token``; ``RevocationError`` unless the server confirmed, then forget it."""
        yield from revocation(self.settings, self.counters, self.tracing, token, token_type_hint)
        yield from self.forget(key)


def _outcome(info: TokenInfo) -> str:
    return "active" if info.active else "inactive"
