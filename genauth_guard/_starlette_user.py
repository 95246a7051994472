"""The Starlette objects an accepted request carries: ``scope["user"]`` and ``scope["auth"]``.

Made once per cached answer, not once per request: the ASGI guard keeps the
``TokenUser`` with the cache entry (``CachedAnswer.memo``) and every request
with that token gets the same one; ``TokenCredentials`` are shared by every
answer with the same scopes. Sorting the scopes and building two objects on
each request cost a cached request more than the cache lookup itself.

Shared objects must not change under a request's feet, so both are
read-only: assigning an attribute, or changing the scope list, raises with
advice (per-request data belongs in ``request.state``). Copies of the scope
list are ordinary lists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

from starlette.authentication import AuthCredentials, BaseUser

from ._claims import ordered_scopes
from ._token_info import TokenInfo

_READ_ONLY = (
    "{what} is shared by every request with this token, so it is read-only; keep "
    "per-request data in request.state (or copy the scopes: list(request.auth.scopes))."
)


class ReadOnlyScopes(list[str]):
    """``AuthCredentials.scopes`` that no request can change for the others (still a ``list``)."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        return (list, (list(self),))  # a copy is a plain, mutable list


def _refuse(self: object, *args: object, **kwargs: object) -> NoReturn:
    raise TypeError(_READ_ONLY.format(what="request.auth.scopes"))


for _name in (
    "__setitem__",
    "__delitem__",
    "__iadd__",
    "__imul__",
    "append",
    "clear",
    "extend",
    "insert",
    "pop",
    "remove",
    "reverse",
    "sort",
):
    setattr(ReadOnlyScopes, _name, _refuse)


class TokenCredentials(AuthCredentials):
    """``scope["auth"]``: ``AuthCredentials`` with the token's scopes, sorted and read-only."""

    def __init__(self, scopes: Iterable[str]) -> None:
        object.__setattr__(self, "scopes", ReadOnlyScopes(scopes))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(_READ_ONLY.format(what="request.auth"))

    def __delattr__(self, name: str) -> None:
        raise AttributeError(_READ_ONLY.format(what="request.auth"))


_credentials: dict[frozenset[str], TokenCredentials] = {}


def credentials_for(scopes: frozenset[str]) -> TokenCredentials:
    """The shared ``TokenCredentials`` of ``scopes`` (a bounded table, like ``_claims``'s)."""
    kept = _credentials.get(scopes)
    if kept is None:
        kept = TokenCredentials(ordered_scopes(scopes))
        if len(_credentials) >= 4096:
            _credentials.clear()
        _credentials[scopes] = kept
    return kept


class TokenUser(BaseUser):
    """The Starlette user of an accepted request: who the token speaks for.

    ``identity`` is the token's ``sub``, else its ``username``, else ``""``:
    a client acting for itself has no user identity (``token_info.client_id``
    names the client). One per cached answer, shared by its requests, hence
    read-only.
    """

    __slots__ = ("credentials", "token_info")
    token_info: TokenInfo
    credentials: TokenCredentials

    def __init__(self, token_info: TokenInfo) -> None:
        object.__setattr__(self, "token_info", token_info)
        object.__setattr__(self, "credentials", credentials_for(token_info.scopes))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(_READ_ONLY.format(what="request.user"))

    def __delattr__(self, name: str) -> None:
        raise AttributeError(_READ_ONLY.format(what="request.user"))

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.token_info.username or self.identity

    @property
    def identity(self) -> str:
        return self.token_info.identity or ""

    def __repr__(self) -> str:
        return f"TokenUser(identity={self.identity!r})"
