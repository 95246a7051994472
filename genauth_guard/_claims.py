"""Answers kept small: ``TokenInfo.claims`` without a dict per answer, common values shared.

A cache holds up to ``cache_maxsize`` answers, and an authorization server
sends nearly the same answer for every token: the same claim names in the
same order, the same ``iss``, ``client_id``, ``token_type`` and scope
strings, the same ``sub`` for every token of one user. Kept as parsed, each
answer would carry its own dict and its own copy of every name and common
value (about 1 KB of the 2 KB a cached answer used to cost). Here:

- ``Claims`` is a read-only mapping of one answer: a tuple of its values
  and a *layout* (the names in order, with an index) shared by every answer
  with the same names;
- short string values (and the scope sets and ``aud`` tuples parsed from
  them) are looked up in bounded tables, so equal values are one object.

The tables only ever hold values some answer sent, are bounded (cleared
when full: the answers keep what they hold, the next ones fill the tables
again) and never decide anything: a value found there is equal to the one
in the answer, so nothing but memory changes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

TABLE_SIZE = 4096
"""Most distinct values (and scope sets, ``aud`` tuples) shared at once per table."""
LAYOUTS = 256
"""Most distinct claim-name layouts shared at once."""
SHARED_LENGTH = 128
"""Longest string value shared; longer ones are rarely repeated."""
SHARED_SCOPE_LENGTH = 1024
"""Longest ``scope`` string whose set is shared (and ``SHARED_SCOPES`` most scopes in one set)."""
SHARED_SCOPES = 64
UNIQUE_CLAIMS = frozenset({"jti"})
"""Claims whose values differ for every token: sharing them would only churn the table."""

K = TypeVar("K")
V = TypeVar("V")


def _shared(table: dict[K, V], key: K, value: V) -> V:
    """The value kept for ``key``, keeping ``value`` if there is none (the table stays bounded)."""
    kept = table.get(key)
    if kept is not None:
        return kept
    if len(table) >= TABLE_SIZE:
        table.clear()
    table[key] = value
    return value


_strings: dict[str, str] = {}
_scope_sets: dict[str, frozenset[str]] = {}
_ordered: dict[frozenset[str], tuple[str, ...]] = {}
_tuples: dict[tuple[str, ...], tuple[str, ...]] = {}


def shared_string(value: str) -> str:
    """``value``, or the equal string already kept for another answer."""
    return _shared(_strings, value, value) if len(value) <= SHARED_LENGTH else value


def scope_set(scope: str) -> frozenset[str]:
    """The set of the space-separated scopes in ``scope``, one object per distinct string."""
    kept = _scope_sets.get(scope)
    if kept is None:
        kept = frozenset(shared_string(s) for s in scope.split())
        if len(scope) <= SHARED_SCOPE_LENGTH:
            kept = _shared(_scope_sets, scope, kept)
    return kept


def ordered_scopes(scopes: frozenset[str]) -> tuple[str, ...]:
    """``scopes`` sorted, computed once per distinct set (every accepted request needs it)."""
    kept = _ordered.get(scopes)
    if kept is None:
        kept = tuple(sorted(scopes))
        if len(kept) <= SHARED_SCOPES:
            kept = _shared(_ordered, scopes, kept)
    return kept


def shared_tuple(values: tuple[str, ...]) -> tuple[str, ...]:
    """``values``, or the equal tuple already kept for another answer (``aud``)."""
    return _shared(_tuples, values, values) if len(values) <= 8 else values


class _Layout:
    """The claim names of an answer, in order, with each one's position."""

    __slots__ = ("index", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.index = {name: position for position, name in enumerate(names)}


_layouts: dict[tuple[str, ...], _Layout] = {}


class Claims(Mapping[str, Any]):
    """One answer's claims, read-only: its values, and the layout of names it shares."""

    __slots__ = ("_layout", "_values")

    def __init__(self, layout: _Layout, values: tuple[Any, ...]) -> None:
        self._layout = layout
        self._values = values

    def __getitem__(self, name: str) -> Any:
        position = self._layout.index.get(name)
        if position is None:
            raise KeyError(name)
        return self._values[position]

    def get(self, name: str, default: Any = None) -> Any:
        position = self._layout.index.get(name)
        return default if position is None else self._values[position]

    def __contains__(self, name: object) -> bool:
        return name in self._layout.index

    def __iter__(self) -> Iterator[str]:
        return iter(self._layout.names)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Claims({dict(zip(self._layout.names, self._values, strict=True))!r})"


def compact_claims(data: Mapping[str, Any]) -> Claims:
    """``data`` (a decoded answer) as ``Claims``, names and short values shared."""
    names = tuple(data)
    layout = _layouts.get(names)
    if layout is None:
        if len(_layouts) >= LAYOUTS:
            _layouts.clear()
        layout = _layouts[names] = _Layout(tuple(shared_string(name) for name in names))
    values = tuple(
        shared_string(value) if type(value) is str and name not in UNIQUE_CLAIMS else value
        for name, value in zip(layout.names, data.values(), strict=True)
    )
    return Claims(layout, values)
