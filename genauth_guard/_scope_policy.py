"""Scope policies: which granted scopes cover a needed one, and which scopes a route needs.

Pure, no I/O: the guards (``GuardPolicy``) and ``require_scopes`` both use it.

- A *strategy* says when a granted scope covers a needed one. ``exact``:
  only the same name (case-sensitive). ``hierarchic``: also a granted
  ancestor, levels separated by ``:`` (``orders`` covers ``orders:read``
  and ``orders:read:own``; ``order`` covers nothing of ``orders``).
  ``wildcard``: also a granted ``prefix:*`` for anything strictly below
  ``prefix`` (``orders:*`` covers ``orders:read``, not ``orders``); a lone
  ``*`` is an ordinary scope name, and ``wildcard`` does not imply
  ``hierarchic``.
- A *match* says how many of the needed scopes must be covered: ``all`` or
  ``any``.
- *Rules* (``rules=[(method, path, scopes), ...]``) add scopes per route; the
  first rule that matches applies.

Rules can only make a request need more, so matching fails closed: a path
with dot segments (``/public/../admin``) or doubled slashes is matched both
as received and as a server that normalises it would route it, and the
request needs the scopes of both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, get_args

from .errors import ConfigurationError

ScopeStrategy = Literal["exact", "hierarchic", "wildcard"]
Match = Literal["all", "any"]
STRATEGIES: Final[tuple[str, ...]] = get_args(ScopeStrategy)
MATCHES: Final[tuple[str, ...]] = get_args(Match)
DEFAULT_STRATEGY: Final = "exact"

# RFC 9110 5.6.2: a method is a token.
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def scope_set(scopes: Iterable[str] | str, option: str) -> frozenset[str]:
    """Scope names from a list or a space-separated string; ``ConfigurationError`` if malformed."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    try:
        result = frozenset(scopes)
    except TypeError:
        raise ConfigurationError(
            f"{option} must be a space-separated string or a list of scope names, got {scopes!r}."
        ) from None
    if any(not isinstance(s, str) or not _SCOPE_TOKEN.fullmatch(s) for s in result):
        raise ConfigurationError(
            f"{option} must be scope names (printable ASCII without spaces, quotes or "
            f"backslashes), got {scopes!r}."
        )
    return result


def check_strategy(value: object, option: str = "scope_strategy") -> ScopeStrategy:
    """``value`` if it names a strategy, else ``ConfigurationError``."""
    if value not in STRATEGIES:
        raise ConfigurationError(
            f"{option}={value!r} is not a scope strategy; use one of {', '.join(STRATEGIES)}."
        )
    return value  # type: ignore[return-value]


def check_match(value: object) -> Match:
    """``value`` if it is ``"all"`` or ``"any"``, else ``ConfigurationError``."""
    if value not in MATCHES:
        raise ConfigurationError(
            f"match={value!r} must be 'all' (every scope needed) or 'any' (one suffices)."
        )
    return value  # type: ignore[return-value]


def covers(granted: frozenset[str], needed: str, strategy: str) -> bool:
    """Whether the ``granted`` scopes cover the ``needed`` one under ``strategy``."""
    if needed in granted:
        return True
    if strategy == "exact":
        return False
    hierarchic = strategy == "hierarchic"
    index = needed.find(":")
    while index != -1:
        if hierarchic:
            if needed[:index] in granted:
                return True
        elif index + 1 < len(needed) and needed[: index + 1] + "*" in granted:
            return True
        index = needed.find(":", index + 1)
    return False


def satisfied(granted: frozenset[str], needed: frozenset[str], match: str, strategy: str) -> bool:
    """Whether ``granted`` covers all (``match="all"``) or one (``"any"``) of ``needed``."""
    if not needed:
        return True
    if match == "any":
        return any(covers(granted, scope, strategy) for scope in needed)
    return all(covers(granted, scope, strategy) for scope in needed)


# ---------------------------------------------------------------- rules


def _has_odd_segments(path: str) -> bool:
    """True for a path a normalising server might route elsewhere: ``.``/``..`` or ``//``."""
    return "//" in path or any(s in (".", "..") for s in path.split("/"))


def normalized_path(path: str) -> str:
    """``path`` with dot segments resolved (RFC 3986 5.2.4) and empty segments dropped."""
    out: list[str] = []
    segments = path.split("/")[1:]
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment not in (".", ""):
            out.append(segment)
    trailing = bool(segments) and segments[-1] in ("", ".", "..") and bool(out)
    return "/" + "/".join(out) + ("/" if trailing else "")


def _strip_slash(path: str) -> str:
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


@dataclass(frozen=True, slots=True)
class ScopeRule:
    """One ``(method, path, scopes)`` rule: ``path`` exact, or a prefix when ``prefix`` is set.

    An exact path ignores one trailing slash (``/orders`` and ``/orders/``
    route alike in most frameworks); a prefix rule ``/orders/*`` also covers
    ``/orders`` itself, like ``exclude_paths``.
    """

    method: str
    path: str
    prefix: bool
    scopes: frozenset[str]

    def matches(self, method: str, path: str) -> bool:
        if self.method not in ("*", method) and not (self.method == "GET" and method == "HEAD"):
            return False
        if self.prefix:
            return path.startswith(self.path) or path == self.path[:-1]
        return _strip_slash(path) == self.path


def _rule(entry: object, index: int) -> ScopeRule:
    where = f"rules[{index}]"
    if isinstance(entry, str | bytes) or not isinstance(entry, Sequence) or len(entry) != 3:
        raise ConfigurationError(
            f"{where}={entry!r} must be a (method, path, scopes) tuple, e.g. "
            "('GET', '/orders/*', 'orders:read')."
        )
    method, path, scopes = entry
    if not isinstance(method, str) or not (method == "*" or _METHOD.fullmatch(method)):
        raise ConfigurationError(
            f"{where}: method {method!r} must be an HTTP method such as 'GET', or '*' for any."
        )
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or "*" in path.removesuffix("/*")
        or "?" in path
        or "#" in path
        or _has_odd_segments(path.removesuffix("/*") or "/")
    ):
        raise ConfigurationError(
            f"{where}: path {path!r} must start with '/' and be an exact path ('/orders') or "
            "a prefix ending in '/*' ('/orders/*'), without '.'/'..' segments, '//', query "
            "or other '*'."
        )
    needed = scope_set(scopes, f"{where} scopes")
    if not needed:
        raise ConfigurationError(
            f"{where} names no scope; give at least one (to serve a path without a token, "
            "use exclude_paths)."
        )
    prefix = path.endswith("/*")
    return ScopeRule(
        method.upper(),
        path[:-1] if prefix else _strip_slash(path),
        prefix,
        needed,
    )


class ScopeRules:
    """The guard's ``rules``: the extra scopes a request needs by method and path."""

    __slots__ = ("rules",)

    def __init__(self, rules: Iterable[object] | None = ()) -> None:
        if rules is None:
            rules = ()
        if isinstance(rules, str | bytes) or not isinstance(rules, Iterable):
            raise ConfigurationError(
                f"rules={rules!r} must be a list of (method, path, scopes) tuples."
            )
        self.rules = tuple(_rule(entry, i) for i, entry in enumerate(rules))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _first(self, method: str, path: str) -> frozenset[str]:
        for rule in self.rules:
            if rule.matches(method, path):
                return rule.scopes
        return frozenset()

    def scopes_for(self, method: str, path: str) -> frozenset[str]:
        """The scopes of the first rule that matches; both forms of an odd path count."""
        if not self.rules:
            return frozenset()
        method = method.upper()
        scopes = self._first(method, path)
        if _has_odd_segments(path):
            scopes |= self._first(method, normalized_path(path))
        return scopes
