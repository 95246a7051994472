"""The introspector's parts can be passed in as objects instead of flat keywords.

Each part passed in is the one the introspector uses (shown by its effect on
real calls to the dev server); a part and one of its shortcuts together, or a
keyword no introspector takes, are refused at construction.
"""

from __future__ import annotations

import pytest

from genauth_guard import (
    CircuitBreaker,
    ClaimRules,
    ConfigurationError,
    Introspector,
    RetryPolicy,
    SyncIntrospector,
    TokenCache,
)

from .conftest import RunningAuthServer

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}


def test_parts_passed_in_are_the_parts_used(auth_server: RunningAuthServer) -> None:
    cache = TokenCache(maxsize=5, ttl=60.0, negative_ttl=0.0)
    breaker = CircuitBreaker(1, 30.0)
    retry = RetryPolicy(0, 0.0)
    rules = ClaimRules.from_options(audience="https://api.example.com")
    introspector = SyncIntrospector(
        auth_server.endpoint(),
        cache=cache,
        circuit_breaker=breaker,
        retry=retry,
        claim_rules=rules,
        **CREDENTIALS,  # type: ignore[arg-type]
    )
    mine = auth_server.server.mint("alice", audience="https://api.example.com")
    other = auth_server.server.mint("bob", audience="https://other.example.com")
    assert introspector.introspect(mine).sub == "alice"
    assert not introspector.introspect(other).active  # the audience rule passed in
    assert introspector.cache is cache and len(cache) == 1  # negative_ttl=0: bob not kept
    assert introspector.breaker is breaker and introspector.retry is retry
    introspector.close()


@pytest.mark.parametrize(
    ("part", "shortcut"),
    [
        ("cache", {"cache_ttl": 5.0}),
        ("retry", {"retries": 3}),
        ("circuit_breaker", {"circuit_breaker_threshold": 2}),
        ("claim_rules", {"audience": "x"}),
    ],
)
def test_a_part_and_its_shortcut_together_are_refused(
    part: str, shortcut: dict[str, object]
) -> None:
    objects = {
        "cache": TokenCache(),
        "retry": RetryPolicy(),
        "circuit_breaker": CircuitBreaker(5, 5.0),
        "claim_rules": ClaimRules(),
    }
    with pytest.raises(ConfigurationError, match=f"pass either {part}= or"):
        Introspector(
            "https://as.example/introspect",
            **{part: objects[part], **shortcut},  # type: ignore[arg-type]
            **CREDENTIALS,  # type: ignore[arg-type]
        )


def test_a_misspelled_option_is_a_type_error_with_a_suggestion() -> None:
    with pytest.raises(TypeError, match="did you mean 'cache_ttl'"):
        Introspector(
            "https://as.example/introspect",
            cache_tll=5.0,  # type: ignore[call-arg]
            **CREDENTIALS,  # type: ignore[arg-type]
        )
