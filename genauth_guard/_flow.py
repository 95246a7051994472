"""The introspection sequence, written once with no I/O, run by both drivers.

Like httpx's auth flows (``httpx/_auth.py``), each sequence is a generator:
it yields a *step* — take a call slot, send this request, wait this long,
read or write the shared cache — and the driver performs it and sends the
outcome back in (or throws the exception it raised). ``Introspector`` does
each step with asyncio, ``SyncIntrospector`` with threads; everything that
is decided (breaker, retries, parsing, claim rules, what is cached and for
how long, stale service, logging) is decided here, in one place.

The sequence for a token missing from the local cache::

    shared cache? -> breaker -> call slot -> attempt (send, parse, rules)
                  -> retry? -> release -> store (local, shared) | give up

Single flight and the local cache lookup stay in the drivers: they run
before any flow starts and are the cached path, which must cost a digest
and a lookup, not a generator.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import httpx

from . import _jwt_response as jwt_response
from ._cache import SharedCache, TokenCache, key_hint
from ._client_auth import ClientAuthentication
from ._jwks import Fetch, JwksCache
from ._logging import (
    FailureLog,
    profile_failed,
    shared_cache_failed,
    stale_served,
    token_rejected,
)
from ._protocol import (
    check_revocation_response,
    parse_introspection_response,
    parse_userinfo_response,
    token_request,
    transport_error,
    unexpected_failure,
    userinfo_request,
)
from ._resilience import CircuitBreaker, RetryPolicy, is_connection_failure, too_busy
from ._token_info import TokenInfo
from ._validation import ClaimRules
from .errors import (
    AuthorizationServerUnavailable,
    ConfigurationError,
    IntrospectionError,
    InvalidIntrospectionResponse,
    RevocationError,
)

if TYPE_CHECKING:
    from ._jose import PublicKey


@dataclass(frozen=True, slots=True)
class TakeSlot:
    """Wait up to ``timeout`` seconds for one of the call slots; resume with ``True`` if taken.

    The driver gives the slot back when the flow ends, however it ends.
    """

    timeout: float


@dataclass(frozen=True, slots=True)
class Exchange:
    """Send ``request`` within the call timeout; resume with the ``Answer`` (or the error)."""

    request: httpx.Request


@dataclass(frozen=True, slots=True)
class Wait:
    """Sleep ``seconds`` (the backoff before a retry); resume with ``None``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class SharedGet:
    """Look ``key`` up in the shared cache; resume with ``(answer, seconds left)`` or ``None``."""

    key: bytes


@dataclass(frozen=True, slots=True)
class SharedPut:
    """Store ``info`` under ``key`` in the shared cache for ``ttl`` seconds."""

    key: bytes
    info: TokenInfo
    ttl: float


@dataclass(frozen=True, slots=True)
class SharedDelete:
    """Drop ``key`` from the shared cache; resume with ``None``."""

    key: bytes


Step = TakeSlot | Exchange | Wait | SharedGet | SharedPut | SharedDelete


@dataclass(frozen=True, slots=True)
class Answer:
    """What the server sent back: status, headers and the (bounded, decoded) body."""

    status: int
    headers: httpx.Headers
    body: bytes


Flow = Generator[Step, Any, Any]
"""A sequence: yields steps, receives their outcomes, returns its result."""


@dataclass(frozen=True, slots=True)
class FlowSettings:
    """What one introspector's flows need besides its parts (all checked already)."""

    introspection_endpoint: str
    revocation_endpoint: str | None
    auth: ClientAuthentication
    revocation_auth: ClientAuthentication
    token_type_hint: str | None
    leeway: float
    max_concurrent_introspections: int
    queue_timeout: float
    serve_stale_on_error: bool
    userinfo_endpoint: str | None = None
    require_userinfo: bool = False
    jwt_response_issuer: str | None = None
    """RFC 9701: the issuer signed answers must name; ``None``: plain JSON answers."""


class IntrospectionFlow:
    """The sequences of one introspector, over its parts.

    ``cache`` (local, always), ``shared_cache`` (a second level, or ``None``),
    ``retry``, ``breaker`` and ``rules`` are the components the introspector
    was built with; ``jwks`` the server's signing keys when answers are
    signed JWTs (RFC 9701); the flow holds the decisions between them.
    """

    def __init__(
        self,
        settings: FlowSettings,
        *,
        cache: TokenCache,
        shared_cache: SharedCache | None,
        retry: RetryPolicy,
        breaker: CircuitBreaker,
        rules: ClaimRules,
        jwks: JwksCache | None = None,
    ) -> None:
        if (jwks is None) != (settings.jwt_response_issuer is None):
            raise ValueError("signed answers need both a JWKS and an issuer")
        self.jwks = jwks
        self.settings = settings
        self.cache = cache
        self.shared_cache = shared_cache
        self.retry = retry
        self.breaker = breaker
        self.rules = rules
        self.failures = FailureLog()

    # ------------------------------------------------------------ introspection

    def introspection(self, key: bytes, token: str) -> Flow:
        """The answer for ``token`` (whose local cache lookup missed), or ``IntrospectionError``."""
        if self.shared_cache is not None:
            shared = yield from self._shared_lookup(key)
            if shared is not None:
                return shared
        try:
            self.breaker.check()
            try:
                taken = yield TakeSlot(self.settings.queue_timeout)
            except BaseException:
                self.breaker.release()
                raise
            if not taken:
                self.breaker.release()
                raise too_busy(
                    self.settings.max_concurrent_introspections, self.settings.queue_timeout
                )
            try:
                info = yield from self._attempts(key, token)
                if info.active and self.settings.userinfo_endpoint is not None:
                    info = yield from self._with_profile(key, token, info)
            except BaseException as exc:
                self.breaker.record(exc, key)
                raise
            self.breaker.record(None)
        except IntrospectionError as error:
            return self._give_up(key, error)
        self.failures.success()
        yield from self.store(key, info)
        return info

    def _attempts(self, key: bytes, token: str) -> Flow:
        """Ask until an answer, or until the retry policy gives up (raises the failure)."""
        attempt = 1
        while True:
            try:
                request = token_request(
                    self.settings.introspection_endpoint,
                    self.settings.auth,
                    token,
                    self.settings.token_type_hint,
                    accept=jwt_response.MEDIA_TYPE if self.jwks is not None else "application/json",
                )
                answer: Answer = yield Exchange(request)
                return (yield from self._read(key, answer))
            except Exception as exc:  # every failure of one attempt is judged, none escapes
                error, delay = self._judge(key, exc, attempt)
            if delay is None:
                raise error
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
        """The answer's ``TokenInfo`` (``_parse``), after fetching the key a signed one needs."""
        if self.jwks is None:
            return self._parse(key, answer)
        signed = jwt_response.read(answer.status, answer.headers, answer.body)
        public_key = yield from self._signing_key(self.jwks, signed)
        return self._parse(key, answer, signed, public_key)

    def _parse(
        self,
        key: bytes,
        answer: Answer,
        signed: jwt_response.SignedAnswer | None = None,
        public_key: PublicKey | None = None,
    ) -> TokenInfo:
        """The answer as ``TokenInfo`` with the claim rules applied; raises if there is none.

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
        info, broken_rule = self.rules.apply(info)
        if broken_rule is not None:
            token_rejected(key_hint(key), broken_rule)
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

    def _give_up(self, key: bytes, error: IntrospectionError) -> TokenInfo:
        """Log the failure; return a stale answer if allowed and there is one, else raise.

        Stale answers stand in only while the server is unavailable or
        talking nonsense, never when it refused us (4xx): that needs fixing.
        """
        self.failures.failure(str(error), key_hint(key), error.reason)
        if self.settings.serve_stale_on_error and isinstance(
            error, AuthorizationServerUnavailable | InvalidIntrospectionResponse
        ):
            stale = self.cache.get_stale(key)
            if stale is not None:
                stale_served(key_hint(key))
                return stale
        raise error

    # ------------------------------------------------------------ the two cache levels

    def store(self, key: bytes, info: TokenInfo) -> Flow:
        """Keep ``info`` locally and in the shared cache, for as long as the cache rule says."""
        self.cache.put(key, info)
        if self.shared_cache is not None:
            ttl = self.cache.lifetime(info, time.time())
            try:
                yield SharedPut(key, info, ttl) if ttl > 0 else SharedDelete(key)
            except Exception as exc:
                shared_cache_failed(type(exc).__name__)

    def _shared_lookup(self, key: bytes) -> Flow:
        """The shared cache's answer, copied into the local cache with its remaining life.

        A shared cache that fails is skipped (logged): it may slow a miss
        down, it never decides one.
        """
        try:
            found = yield SharedGet(key)
        except Exception as exc:
            shared_cache_failed(type(exc).__name__)
            return None
        if found is None:
            return None
        info, seconds_left = found
        self.cache.put(key, info, max_lifetime=seconds_left)
        return self.cache.get(key)

    def forget(self, key: bytes) -> Flow:
        """Drop ``key`` from both levels (``invalidate``, a confirmed revocation)."""
        self.cache.discard(key)
        if self.shared_cache is not None:
            yield SharedDelete(key)

    # ------------------------------------------------------------ revocation (RFC 7009)

    def revocation(self, key: bytes, token: str, token_type_hint: str | None) -> Flow:
        """Revoke ``token``; ``RevocationError`` unless the server confirmed, then forget it."""
        endpoint = self.settings.revocation_endpoint
        if endpoint is None:
            raise ConfigurationError(
                "revoke() needs a revocation endpoint: pass revocation_endpoint= to the "
                "constructor, or build the introspector with from_genauth() or "
                "from_discovery(), which know it."
            )
        request = token_request(endpoint, self.settings.revocation_auth, token, token_type_hint)
        try:
            answer: Answer = yield Exchange(request)
        except Exception as exc:
            error = (
                exc
                if isinstance(exc, IntrospectionError)
                else transport_error("revocation", endpoint, exc)
            )
            raise RevocationError(f"The token may not be revoked: {error}") from None
        check_revocation_response(answer.status, answer.headers, answer.body)
        yield from self.forget(key)
