"""``TokenInfo.claims`` is the whole answer, read-only, however compactly it is kept.

Cached answers share their claim names and common values (``_claims``), so
that 100,000 of them fit in under 1 KB each. What a route reads must not
change: every answer's claims equal what its server sent, nested values
included, answers with the same names keep their own values, and no
number of distinct answer shapes mixes them up.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import pytest

from genauth_guard import SyncIntrospector

from .fault_upstream import FaultyUpstream, faulty_upstream

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[FaultyUpstream]:
    with faulty_upstream() as running:
        yield running


def answer_for(upstream: FaultyUpstream, **claims: object) -> tuple[str, dict[str, object]]:
    token = secrets.token_urlsafe(24)
    upstream.app.tokens[token] = claims
    return token, {"active": True, **claims}


def test_claims_are_the_answer_as_sent(upstream: FaultyUpstream) -> None:
    exp = int(time.time()) + 600
    common = {"iss": "https://as.example", "client_id": "app", "scope": "a b", "exp": exp}
    alice, alice_sent = answer_for(upstream, sub="alice", jti="1", **common)
    bob, bob_sent = answer_for(
        upstream, sub="bob", jti="2", cnf={"jkt": "thumb"}, aud=["x", "y"], **common
    )
    with SyncIntrospector(upstream.direct_url, **CREDENTIALS) as introspector:  # type: ignore[arg-type]
        alice_info, bob_info = introspector.introspect(alice), introspector.introspect(bob)
        cached = introspector.introspect(alice)
    assert dict(alice_info.claims) == alice_sent and dict(bob_info.claims) == bob_sent
    assert cached is alice_info
    assert alice_info.claims == alice_sent  # a Mapping compares equal to the dict
    assert list(alice_info.claims) == list(alice_sent)  # the server's order
    assert json.loads(json.dumps(dict(bob_info.claims))) == bob_sent
    assert bob_info.claims["cnf"] == {"jkt": "thumb"} and bob_info.aud == ("x", "y")
    assert "jti" in alice_info.claims and "cnf" not in alice_info.claims
    assert alice_info.claims.get("cnf", "none") == "none"
    assert alice_info.scopes == bob_info.scopes == frozenset({"a", "b"})
    assert "'sub': 'alice'" in repr(alice_info.claims)
    with pytest.raises(TypeError):
        alice_info.claims["sub"] = "mallory"  # type: ignore[index]
    with pytest.raises(KeyError):
        alice_info.claims["missing"]


def test_many_answer_shapes_keep_their_own_claims(upstream: FaultyUpstream) -> None:
    sent = [answer_for(upstream, sub=f"user-{i}", **{f"claim_{i}": i}) for i in range(300)]
    with SyncIntrospector(upstream.direct_url, **CREDENTIALS) as introspector:  # type: ignore[arg-type]
        answers = [introspector.introspect(token) for token, _ in sent]
        again = [introspector.introspect(token) for token, _ in sent]
    assert [dict(info.claims) for info in answers] == [claims for _, claims in sent]
    assert again == answers
