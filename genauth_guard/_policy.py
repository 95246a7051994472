"""The guard's decisions, shared by the ASGI and WSGI middlewares.

Given what a request carries and what the introspector answered, decide:
pass, or which ``Rejection``. No I/O and no framework here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TypedDict

from ._bearer import DEFAULT_MAX_TOKEN_LENGTH, extract_bearer
from ._challenge import (
    Rejection,
    check_realm,
    insufficient_scope,
    invalid_request,
    invalid_token,
    missing_token,
    unavailable,
)
from ._request_view import RequestView
from ._token_info import TokenInfo
from .errors import ConfigurationError, IntrospectionError, InvalidRequest

DEFAULT_RETRY_AFTER = 5


def scope_set(scopes: Iterable[str] | str, option: str) -> frozenset[str]:
    """Scope names from a list or a space-separated string; ``ConfigurationError`` if malformed."""
    if isinstance(scopes, str):
        scopes = scopes.split()
    result = frozenset(scopes)
    if any(not s or not isinstance(s, str) or " " in s for s in result):
        raise ConfigurationError(f"{option} must be scope names without spaces, got {scopes!r}.")
    return result


def missing_scopes(info: TokenInfo, required: frozenset[str]) -> Rejection | None:
    """``insufficient_scope`` naming every required scope, or ``None`` if all were granted."""
    return None if info.has_scopes(required) else insufficient_scope(tuple(required))


class GuardOptions(TypedDict, total=False):
    """The options both middlewares take (``GenAuthGuard``, ``GenAuthGuardWSGI``), typed once.

    ``exclude_paths``: exact paths (``/health``) and prefixes (``/public/*``)
    served without a token. ``required_scopes``: scopes every protected
    request needs. ``realm``: named in every challenge. ``allow_query_token``:
    accept ``?access_token=`` (off: URLs end up in logs). ``retry_after``:
    seconds in a 503's ``Retry-After`` when the server named none.
    """

    exclude_paths: Iterable[str]
    required_scopes: Iterable[str] | str
    realm: str
    allow_query_token: bool
    retry_after: int


class GuardPolicy:
    """What a protected request must satisfy; one per middleware."""

    def __init__(
        self,
        *,
        exclude_paths: Iterable[str] = (),
        required_scopes: Iterable[str] | str = (),
        realm: str = "api",
        allow_query_token: bool = False,
        max_token_length: int = DEFAULT_MAX_TOKEN_LENGTH,
        retry_after: int = DEFAULT_RETRY_AFTER,
    ) -> None:
        if isinstance(exclude_paths, str):
            exclude_paths = (exclude_paths,)
        exact: set[str] = set()
        prefixes: list[str] = []
        for path in exclude_paths:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ConfigurationError(
                    f"exclude_paths entries must start with '/', got {path!r}; use '/health' "
                    "for one path or '/public/*' for everything below /public."
                )
            if path.endswith("/*"):
                prefixes.append(path[:-1])  # keeps the trailing "/"
                exact.add(path[:-2] or "/")
            else:
                exact.add(path)
        self.exact_paths = frozenset(exact)
        self.path_prefixes = tuple(prefixes)
        self.required_scopes = scope_set(required_scopes, "required_scopes")
        try:
            self.realm = check_realm(realm)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        self.allow_query_token = allow_query_token
        self.max_token_length = max_token_length
        self.retry_after = retry_after

    def is_excluded(self, path: str) -> bool:
        """True when ``path`` is served without a token.

        A path with ``.``/``..`` segments or empty segments is never excluded:
        a server or proxy that normalises it later could land on a protected
        route (``/health/../admin``).
        """
        if path in self.exact_paths:
            return "//" not in path
        if not self.path_prefixes or not path.startswith(self.path_prefixes):
            return False
        segments = path.split("/")[1:]
        return not any(s in ("", ".", "..") for s in segments[:-1]) and segments[-1] not in (
            ".",
            "..",
        )

    def token(self, authorization: Sequence[str], query_string: str) -> str | Rejection:
        """The request's bearer token, or the rejection for its absence or malformation."""
        try:
            token = extract_bearer(
                authorization,
                query_string,
                allow_query_token=self.allow_query_token,
                max_length=self.max_token_length,
            )
        except InvalidRequest as exc:
            return invalid_request(str(exc))
        return missing_token() if token is None else token

    def token_of(self, request: RequestView) -> str | Rejection:
        """``token`` for a request seen through its framework-neutral view."""
        return self.token(request.authorization(), request.query_string())

    def check(self, info: TokenInfo, request: RequestView | None = None) -> Rejection | None:
        """The rejection for this answer, or ``None`` when the request may pass.

        Runs on every request, cached answer or not: scopes are never cached
        as a decision.
        """
        if not info.active:
            return invalid_token()
        if self.required_scopes:
            return missing_scopes(info, self.required_scopes)
        return None

    def failure(self, error: IntrospectionError) -> Rejection:
        """503 for a failed introspection, passing on the server's own ``Retry-After``."""
        retry_after = self.retry_after
        if error.retry_after is not None:
            retry_after = max(1, math.ceil(error.retry_after))
        return unavailable(retry_after)
