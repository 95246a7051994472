"""Turning an introspector's keyword options into checked values, before any part is built.

Unknown keywords (with a suggestion), a part passed with its own shortcut,
the client credentials and signing-key options, the http client's kind and
the userinfo endpoint of a discovery document: the checks ``IntrospectorBase``
runs first, kept apart so the class reads as what it builds.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from ._credentials import ClientCredentials
from ._options import DEFAULTS, PARTS
from .discovery import ServerMetadata
from .errors import ConfigurationError


def checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` over ``DEFAULTS``; a ``TypeError`` for a name no introspector takes."""
    unknown = [name for name in options if name not in DEFAULTS and name != "client_id"]
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, list(DEFAULTS), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"unexpected keyword argument {name!r}{hint}")
    for part, shortcuts in PARTS.items():
        given = [name for name in shortcuts if name in options]
        if options.get(part) is not None and given:
            raise ConfigurationError(
                f"pass either {part}= or its shortcut options ({', '.join(given)}), not both."
            )
    return {**DEFAULTS, **options}


def userinfo_endpoint_of(metadata: ServerMetadata) -> str:
    """The discovery document's ``userinfo_endpoint`` (``from_discovery(userinfo=True)``)."""
    endpoint = metadata.document.get("userinfo_endpoint")
    if not isinstance(endpoint, str):
        raise ConfigurationError(
            f"userinfo=True, but the discovery document at {metadata.url} names no "
            "userinfo_endpoint; pass userinfo_endpoint= yourself, or drop userinfo=True."
        )
    return endpoint


def check_http_client(client: object, expected: type, driver: str, other: str) -> None:
    """Refuse, at construction, an httpx client of the other driver's kind."""
    if client is not None and not isinstance(client, expected):
        raise ConfigurationError(
            f"{driver} needs an {expected.__module__}.{expected.__name__} as http_client, not "
            f"{type(client).__name__}; pass one, or give your client to {other}."
        )


def optional_str(o: Mapping[str, Any], name: str) -> str | None:
    value = o[name]
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ConfigurationError(f"{name} must be a non-empty str, or None.")
    return value


def credentials_from(o: Mapping[str, Any]) -> ClientCredentials:
    """The client's credentials from the options, the signing ones included."""
    return ClientCredentials(
        o.get("client_id", ""),
        o["client_secret"],
        issuer=optional_str(o, "authorization_server_issuer")
        or optional_str(o, "jwt_response_issuer"),
        private_key=o["client_private_key"],
        key_id=optional_str(o, "client_key_id"),
        assertion_alg=optional_str(o, "client_assertion_alg"),
        assertion_audience=optional_str(o, "client_assertion_audience"),
    )


def check_signing_options_used(o: Mapping[str, Any], methods: set[str]) -> None:
    """A key or assertion option that no configured method uses is a mistake: say so."""
    uses = {
        "client_private_key": {"private_key_jwt"},
        "client_key_id": {"private_key_jwt"},
        "client_assertion_alg": {"private_key_jwt", "client_secret_jwt"},
        "client_assertion_audience": {"private_key_jwt", "client_secret_jwt"},
    }
    for name, users in uses.items():
        if o[name] is not None and not methods & users:
            raise ConfigurationError(
                f"{name} is set, but no auth method uses it: pass auth_method="
                f"{sorted(users)[-1]!r} (GenAuth: introspection_endpoint_auth_method), or "
                f"drop {name}."
            )
