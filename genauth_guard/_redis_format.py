"""What ``RedisCache`` puts into Redis: key names, values, messages and scripts. No I/O.

Everything here is plain ASCII, so a client built with
``decode_responses=True`` reads it as well as one without.

Keys (``P`` is the prefix, ``K`` a token digest, ``S`` a subject digest,
both hex; the braces are Redis Cluster hash tags, so each script's keys
live in one slot)::

    P t:{K}   the answer                       PX: the cache rule's lifetime
    P l:{K}   the lock of whoever asks now      PX: one introspection at most
    P x:{K}   tombstone after an invalidation   PX: the same (refuses late writes)
    P s:{S}   sorted set: the subject's K's     PX: its longest member's; scores = expiry
    P y:{S}   tombstone after invalidate_subject

and one channel, ``P events``, with messages ``k:K`` (forget an answer),
``s:S`` (forget a subject's) and ``w:K`` (K's answer is there, or its
leader failed: look again). Every key has a TTL.

Values: ``1`` (the format), then with a key secret a 22-character MAC over
the key digest and the payload (so a value can be neither forged nor moved
to another key), then compact JSON: ``{"c": the server's answer, "u": the
user's profile (only with userinfo_endpoint)}``. Anything else is
unreadable: the caller deletes it and treats it as a miss.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final, Literal

from ._protocol import claims_answer, load_json_object
from ._shared import EventKind, Follow, Hit, Lead, Lookup, Unreadable
from ._token_info import TokenInfo
from .errors import IntrospectionError

_FORMAT: Final = b"1"
_MAC_CHARS: Final = 22  # base64url of 16 bytes, unpadded

_EVENT_CODES: Final[dict[str, EventKind]] = {"k": "forget", "s": "forget_subject", "w": "wake"}
_EVENT_NAMES: Final[dict[EventKind, str]] = {v: k for k, v in _EVENT_CODES.items()}


class RedisNames:
    """The key and channel names under one prefix."""

    __slots__ = ("channel", "prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.channel = f"{prefix}events"

    def answer(self, key: bytes) -> str:
        return f"{self.prefix}t:{{{key.hex()}}}"

    def lock(self, key: bytes) -> str:
        return f"{self.prefix}l:{{{key.hex()}}}"

    def tombstone(self, key: bytes) -> str:
        return f"{self.prefix}x:{{{key.hex()}}}"

    def index(self, subject: bytes) -> str:
        return f"{self.prefix}s:{{{subject.hex()}}}"

    def subject_tombstone(self, subject: bytes) -> str:
        return f"{self.prefix}y:{{{subject.hex()}}}"

    def proof(self, key: bytes) -> str:
        """A DPoP proof already used (``_replay``): its key is a digest of ``jti`` and key."""
        return f"{self.prefix}p:{{{key.hex()}}}"


def answer_ms(seconds: float) -> int:
    """A lifetime as Redis milliseconds, rounded down: never longer than the rule allows."""
    return max(0, math.floor(seconds * 1000))


def hold_ms(seconds: float) -> int:
    """A lock's or tombstone's life in milliseconds, rounded up (at least 1)."""
    return max(1, math.ceil(seconds * 1000))


# ---------------------------------------------------------------- values


def _claims(info: TokenInfo) -> dict[str, Any]:
    if info.claims:
        return dict(info.claims)
    if not info.active:
        return {"active": False}
    fields: dict[str, Any] = {
        "active": True,
        "sub": info.sub,
        "scope": info.scope or None,
        "client_id": info.client_id,
        "username": info.username,
        "token_type": info.token_type,
        "exp": info.exp,
        "iat": info.iat,
        "nbf": info.nbf,
        "aud": list(info.aud) or None,
        "iss": info.iss,
        "jti": info.jti,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _mac(mac_key: bytes, key: bytes, payload: bytes) -> bytes:
    digest = hmac.digest(mac_key, key + payload, "sha256")[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=")


def encode_answer(info: TokenInfo, key: bytes, mac_key: bytes | None) -> bytes:
    """The stored form of the server's answer ``info`` under ``key``."""
    document: dict[str, Any] = {"c": _claims(info)}
    if info.userinfo is not None:
        document["u"] = dict(info.userinfo)
    payload = json.dumps(
        document, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")
    if mac_key is None:
        return _FORMAT + payload
    return _FORMAT + _mac(mac_key, key, payload) + payload


def decode_answer(value: bytes | str, key: bytes, mac_key: bytes | None) -> TokenInfo | None:
    """The answer stored as ``value`` under ``key``, or ``None`` if it is not one of ours."""
    raw = value.encode("utf-8", "replace") if isinstance(value, str) else value
    if not raw.startswith(_FORMAT):
        return None
    payload = raw[len(_FORMAT) :]
    if mac_key is not None:
        mac, payload = payload[:_MAC_CHARS], payload[_MAC_CHARS:]
        if not hmac.compare_digest(mac, _mac(mac_key, key, payload)):
            return None
    document = load_json_object(payload)
    if document is None:
        return None
    claims, profile = document.get("c"), document.get("u")
    if not isinstance(claims, dict) or not (profile is None or isinstance(profile, dict)):
        return None
    try:
        info = claims_answer(claims)
    except IntrospectionError:
        return None
    if profile is not None and info.active:
        info = replace(info, userinfo=MappingProxyType(profile))
    return info


# ---------------------------------------------------------------- messages


def event_message(kind: Literal["forget", "forget_subject", "wake"], digest: bytes) -> str:
    return f"{_EVENT_NAMES[kind]}:{digest.hex()}"


def parse_event(data: bytes | str) -> tuple[EventKind, bytes] | None:
    """The event in a channel message, or ``None`` for anything else (ignored)."""
    text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
    code, _, hex_digest = text.partition(":")
    kind = _EVENT_CODES.get(code)
    if kind is None or len(hex_digest) != 64:
        return None
    try:
        return kind, bytes.fromhex(hex_digest)
    except ValueError:
        return None


# ---------------------------------------------------------------- scripts (Lua, one slot each)

LOOKUP: Final = """
local v = redis.pcall('GET', KEYS[1])
if type(v) == 'table' and v.err then return {4} end
if v then return {1, v, redis.call('PTTL', KEYS[1])} end
if ARGV[2] == '' then return {0} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
"""
"""KEYS: answer, lock; ARGV: owner, lock ms or ''. Returns {1, value, pttl} (found),
{0} (miss), {2} (miss, lock taken), {3} (miss, locked elsewhere), {4} (not a string)."""

PUT: Final = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
"""KEYS: answer, tombstone; ARGV: value, ms. 0 if an invalidation refuses the write."""

INDEX: Final = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local pruned = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if type(pruned) == 'table' and pruned.err then redis.call('DEL', KEYS[1]) end
redis.call('ZADD', KEYS[1], tonumber(ARGV[3]) + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
"""
"""KEYS: index, subject tombstone; ARGV: member, ms, now ms. Drops expired members;
0 if an invalidation of the subject refuses it (the caller deletes the answer)."""

UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
"""KEYS: lock; ARGV: owner, channel, wake message."""

FORGET: Final = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"""
"""KEYS: answer, tombstone; ARGV: hold ms, channel, message."""

FORGET_SUBJECT: Final = """
redis.call('SET', KEYS[2], '1', 'PX', ARGV[1])
local members = redis.pcall('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
if type(members) == 'table' and members.err then return {} end
return members
"""
"""KEYS: index, subject tombstone; ARGV: hold ms. Returns the subject's token digests."""


def member_keys(members: Any) -> list[bytes]:
    """The token digests in ``FORGET_SUBJECT``'s answer (anything else is skipped)."""
    keys = []
    for member in members if isinstance(members, list) else ():
        text = member.decode("ascii", "replace") if isinstance(member, bytes) else str(member)
        if len(text) == 64:
            try:
                keys.append(bytes.fromhex(text))
            except ValueError:
                continue
    return keys


def read_lookup(reply: Any, key: bytes, owner: str, mac_key: bytes | None) -> Lookup:
    """What ``LOOKUP``'s ``reply`` means (a reply of the wrong shape raises: a Redis failure)."""
    code = int(reply[0])
    if code == 0:
        return None
    if code == 2:
        return Lead(owner)
    if code == 3:
        return Follow()
    if code != 1:
        return Unreadable()
    info = decode_answer(reply[1], key, mac_key)
    milliseconds = int(reply[2])
    if info is None or milliseconds < 0:  # not ours, or written without a TTL: not ours either
        return Unreadable()
    return Hit(info, milliseconds / 1000)
