"""The dev server's vocabulary: registered clients, names and rules every part uses.

No I/O and no imports from the rest of ``genauth_guard.dev``: the token
store, the HTTP endpoints and the public ``server`` module all build on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from .._client_auth import AuthMethod

PROTOCOLS: Final = ("oidc", "oauth")
DEFAULT_CLIENT_ID: Final = "dev-client"
DEFAULT_SUB: Final = "user-1"
ENDPOINT_PATHS: Final = {
    "token": "token",
    "introspection": "token/introspection",
    "revocation": "token/revocation",
}
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN: Final = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def is_scope_token(value: object) -> bool:
    """True for one RFC 6749 scope name (printable ASCII, no space, quote or backslash)."""
    return isinstance(value, str) and _SCOPE_TOKEN.fullmatch(value) is not None


@dataclass(frozen=True)
class DevClient:
    """A client registered at the dev server, and how it must authenticate."""

    client_id: str
    client_secret: str | None = field(repr=False)
    auth_method: AuthMethod = "client_secret_post"
