"""The dev server's clients, users and settings from a TOML or JSON file.

``genauth-guard dev-server --config dev-users.toml`` and
``DevAuthServer.from_config(path)`` read it; ``examples/dev-users.toml``
shows every key. JSON has the same shape (an object with ``clients`` and
``users`` arrays). Unknown keys and wrong types are errors naming the file,
the entry and the key: a misspelled ``redirect_uri`` would otherwise turn
into a confusing refusal at login time.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from .._client_auth import AUTH_METHODS
from ._model import DevClient, DevUser

_STR, _BOOL, _INT, _URIS = "a string", "true or false", "a whole number", "a list of strings"

_SETTINGS: Final = {
    "token_lifetime": _INT,
    "code_lifetime": _INT,
    "refresh_token_lifetime": _INT,
    "auto_approve": "true, false or a user's sub",
    "clients": "an array of tables ([[clients]])",
    "users": "an array of tables ([[users]])",
}
_CLIENT: Final = {
    "client_id": _STR,
    "client_secret": _STR,
    "auth_method": _STR,
    "redirect_uris": _URIS,
    "post_logout_redirect_uris": _URIS,
    "client_public_key": _STR,  # private_key_jwt: the client's public key, PEM
}
_USER: Final = {
    "sub": _STR,
    "name": _STR,
    "username": _STR,
    "email": _STR,
    "email_verified": _BOOL,
    "phone_number": _STR,
    "phone_number_verified": _BOOL,
    "picture": _STR,
    "given_name": _STR,
    "family_name": _STR,
    "nickname": _STR,
    "address": _STR,
    "updated_at": _INT,
}


def _fits(value: object, kind: str) -> bool:
    if kind == _STR:
        return isinstance(value, str)
    if kind == _BOOL:
        return isinstance(value, bool)
    if kind == _INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == _URIS:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == _SETTINGS["auto_approve"]:
        return isinstance(value, bool | str)
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def _check(table: Mapping[str, Any], spec: Mapping[str, str], where: str) -> list[str]:
    problems = []
    for key, value in table.items():
        if key not in spec:
            problems.append(f"{where}: unknown key {key!r}; known keys: {', '.join(spec)}")
        elif not _fits(value, spec[key]):
            problems.append(f"{where}: {key} must be {spec[key]}, got {value!r}")
    return problems


def parse_config(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``DevAuthServer`` keyword arguments from a parsed file; ``ValueError`` lists all problems."""
    problems = _check(data, _SETTINGS, source)
    clients = data.get("clients", []) if isinstance(data.get("clients"), list) else []
    users = data.get("users", []) if isinstance(data.get("users"), list) else []
    for number, entry in enumerate(clients, 1):
        where = f"{source}: clients #{number}"
        problems += _check(entry, _CLIENT, where)
        if "client_id" not in entry:
            problems.append(f"{where}: client_id is required")
        method = entry.get("auth_method", "client_secret_post")
        if method not in AUTH_METHODS:
            problems.append(f"{where}: auth_method must be one of {', '.join(AUTH_METHODS)}")
    for number, entry in enumerate(users, 1):
        where = f"{source}: users #{number}"
        problems += _check(entry, _USER, where)
        if "sub" not in entry:
            problems.append(f"{where}: sub is required")
    if problems:
        raise ValueError("\n".join(problems))
    settings = {
        key: data[key] for key in _SETTINGS if key in data and key not in ("clients", "users")
    }
    try:
        if clients:
            settings["clients"] = [
                DevClient(
                    entry["client_id"],
                    entry.get("client_secret"),
                    entry.get("auth_method", "client_secret_post"),
                    tuple(entry.get("redirect_uris", ())),
                    tuple(entry.get("post_logout_redirect_uris", ())),
                    client_public_key=entry.get("client_public_key"),
                )
                for entry in clients
            ]
        if users:
            settings["users"] = [DevUser(**entry) for entry in users]
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    return settings


def load_config(path: str | Path) -> dict[str, Any]:
    """Read ``path`` (``.json``: JSON, anything else: TOML) into ``DevAuthServer`` arguments.

    Raises ``ValueError`` for content and ``OSError`` for a file that cannot be read.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise ValueError(f"{path}: not valid {kind}: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be an object with clients and users")
    return parse_config(data, str(path))
