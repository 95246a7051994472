"""The authorization server's signing keys (its JWKS), fetched by the flow, kept here.

Pure: the flow (``_flow``) asks ``select`` for the key of an answer; the
answer is a key, or "fetch the set" (the flow then sends ``request()`` as
an ``Exchange`` step and hands the reply to ``store``), or "no such key".
The rules (RFC 9701 section 5, RFC 7517):

- the set is fetched once, then kept ``max_age`` seconds (an hour), or
  the ``Cache-Control: max-age`` of its answer (bounded to 10 s .. 1 day);
- an answer signed with an unknown ``kid`` refetches the set once, so a
  rotated key is picked up at once; further refetches for unknown keys
  happen at most once per ``min_refetch_interval`` (10 s), so forged
  answers naming random ``kid``s cannot make us hammer the server;
- a failed fetch is never cached: the next answer tries again;
- a key is *suitable* for an answer's ``alg`` when its type and curve fit
  it (``_jose.key_fits``), its ``use`` (if any) is ``sig``, its
  ``key_ops`` (if any) include ``verify`` and its ``alg`` (if any) is that
  one; unusable entries are skipped, not fatal (a set may hold
  encryption keys too). An answer without ``kid`` is accepted only when
  exactly one key is suitable.

Thread-safe: ``SyncIntrospector`` runs flows in many threads.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

import httpx

from ._jose import JoseError, key_fits, load_public_jwk
from ._protocol import parse_retry_after, transport_error
from .errors import AuthorizationServerUnavailable

if TYPE_CHECKING:
    from ._jose import PublicKey

JWKS_MAX_AGE: Final = 3600.0
MIN_REFETCH_INTERVAL: Final = 10.0
MAX_KEYS: Final = 100
_MAX_AGE_CEILING: Final = 86400.0
_MAX_AGE: Final = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?([0-9]{1,10})\"?\s*(?:,|$)", re.I)


class Fetch(Enum):
    """``select``'s answer when the flow must fetch the set first."""

    NEEDED = "fetch"


@dataclass(frozen=True, slots=True)
class Jwk:
    """One usable entry of the set: its ``kid``, its restrictions, its public key."""

    kid: str | None
    alg: str | None
    key: PublicKey

    def suits(self, alg: str) -> bool:
        return (self.alg is None or self.alg == alg) and key_fits(self.key, alg)


def cache_max_age(headers: Mapping[str, str], default: float, floor: float) -> float:
    """Seconds to keep a set: its ``Cache-Control: max-age`` within bounds, else ``default``."""
    found = _MAX_AGE.search(headers.get("cache-control", ""))
    if found is None:
        return default
    return min(max(float(found.group(1)), floor), _MAX_AGE_CEILING)


def parse_jwks(body: bytes) -> tuple[Jwk, ...]:
    """The usable signature keys of a JWKS document; ``JoseError`` if it is not one.

    Entries that cannot verify signatures (unknown types, encryption keys,
    private members) are skipped; a set with none left is an error.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise JoseError("the JWKS is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JoseError("the JWKS has no 'keys' list")
    keys: list[Jwk] = []
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        ops = entry.get("key_ops")
        if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
            continue
        kid, alg = entry.get("kid"), entry.get("alg")
        if (kid is not None and not isinstance(kid, str)) or (
            alg is not None and not isinstance(alg, str)
        ):
            continue
        try:
            key = load_public_jwk(entry)
        except JoseError:
            continue
        keys.append(Jwk(kid, alg, key))
    if not keys:
        raise JoseError("the JWKS holds no usable signature key")
    return tuple(keys)


class JwksCache:
    """The key set at ``uri``, with the fetch, keep and refetch rules of the module doc.

    ``max_age``: seconds a set is kept when its answer says nothing;
    ``min_refetch_interval``: least seconds between refetches for an
    unknown key. Times are ``time.monotonic()`` seconds, passed in.
    """

    def __init__(
        self,
        uri: str,
        *,
        max_age: float = JWKS_MAX_AGE,
        min_refetch_interval: float = MIN_REFETCH_INTERVAL,
    ) -> None:
        self.uri = uri
        self.max_age = max_age
        self.min_refetch_interval = min_refetch_interval
        self.fetches = 0
        self._keys: tuple[Jwk, ...] = ()
        self._expires = float("-inf")
        self._last_refetch = float("-inf")
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"JwksCache({self.uri!r}, keys={len(self._keys)})"

    def select(self, kid: str | None, alg: str, now: float, *, may_fetch: bool = True) -> Any:
        """The key for an answer's ``kid`` and ``alg``, ``Fetch.NEEDED``, or ``None`` (no key).

        ``may_fetch=False`` right after a fetch: what the new set lacks, it lacks.
        """
        with self._lock:
            fresh = now < self._expires
            if fresh or not may_fetch:
                key = self._find(kid, alg)
                if key is not None or not may_fetch:
                    return key
                if now - self._last_refetch < self.min_refetch_interval:
                    return None  # an unknown key again so soon: refused, not refetched
                self._last_refetch = now
            return Fetch.NEEDED

    def _find(self, kid: str | None, alg: str) -> PublicKey | None:
        if kid is None:
            suitable = [jwk for jwk in self._keys if jwk.suits(alg)]
            return suitable[0].key if len(suitable) == 1 else None
        for jwk in self._keys:
            if jwk.kid == kid and jwk.suits(alg):
                return jwk.key
        return None

    def request(self) -> httpx.Request:
        """The GET that fetches the set (no credentials: the set is public)."""
        return httpx.Request(
            "GET",
            self.uri,
            headers={
                "Accept": "application/jwk-set+json, application/json",
                "Accept-Encoding": "identity",
            },
        )

    def store(self, status: int, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Keep the set of a fetch's answer, or raise ``AuthorizationServerUnavailable``."""
        if status != 200:
            raise AuthorizationServerUnavailable(
                f"The authorization server's JWKS at {self.uri} answered HTTP {status}, not "
                "200; signed introspection answers cannot be checked until it serves its "
                "keys (check jwks_uri).",
                status_code=status,
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        try:
            keys = parse_jwks(body)
        except JoseError as exc:
            raise AuthorizationServerUnavailable(
                f"The document at {self.uri} is not a usable JWKS ({exc}); check jwks_uri."
            ) from None
        lifetime = cache_max_age(headers, self.max_age, self.min_refetch_interval)
        with self._lock:
            self.fetches += 1
            self._keys = keys
            self._expires = now + lifetime

    def unreachable(self, exc: Exception) -> AuthorizationServerUnavailable:
        """The failure for an exception raised while fetching the set."""
        return transport_error("JWKS", self.uri, exc)

    def clear(self) -> None:
        """Forget the set (the next answer fetches it)."""
        with self._lock:
            self._keys, self._expires, self._last_refetch = (), float("-inf"), float("-inf")
