"""How ``Introspector`` sends one request: a small interface, an httpx and an aiohttp side.

The flow yields an ``Exchange(httpx.Request)`` and wants an ``Answer``
(status, headers, bounded body) or the exception that stopped it. A
``Transport`` does exactly that and nothing more: the runner keeps the
overall deadline (``asyncio.timeout``), the flow keeps every decision. Both
transports keep the same promises, so every fault gets the same answer:

- TLS verified against the same CA bundle (httpx's ``create_ssl_context``);
- no proxy, ``.netrc`` or cookies from the environment (``trust_env=False``),
  no redirects, nothing decompressed behind our back (``BoundedBody`` decodes
  and bounds), a pool of ``max_concurrent_introspections`` keep-alive
  connections;
- failures raised as httpx's exception classes, which the flow classifies
  (``_aiohttp_transport`` maps aiohttp's onto them).

Which one: ``http_client=`` (the user's ``httpx.AsyncClient``) wins; else
aiohttp when it can be imported (the ``genauth-guard[aiohttp]`` extra),
because it sends introspections several times faster than httpx's own pool
(``docs/performance.md``); else httpx.
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from ._logging import logger
from ._protocol import BoundedBody
from ._steps import Answer


class Transport(Protocol):
    """Sends one request on the running event loop; made and used on that loop only."""

    async def exchange(self, request: httpx.Request, max_bytes: int) -> Answer:
        """``request``'s answer, its body read up to ``max_bytes`` (decoded); or raise."""
        ...

    async def aclose(self) -> None:
        """Close the connections (from any event loop; the transport's may be gone)."""
        ...

    def abandon(self) -> None:
        """Let go without awaiting: the event loop the transport was made on is left behind."""
        ...


@dataclass(frozen=True, slots=True)
class TransportChoice:
    """A way to make the transport on each event loop, and the name the start-up log gives."""

    name: str
    make: Callable[[], Transport]


@functools.cache
def verified_tls() -> ssl.SSLContext:
    """The TLS context of every client the library builds: httpx's default, shared.

    The same certificate bundle for both transports (httpx's, not the
    system's), never the environment's ``SSL_CERT_FILE`` (``trust_env=False``).
    Built once: loading the bundle costs tens of milliseconds.
    """
    return httpx.create_ssl_context(verify=True, trust_env=False)


class HttpxTransport:
    """An ``httpx.AsyncClient``: ours (``own``) or the one passed as ``http_client``."""

    def __init__(self, client: httpx.AsyncClient, timeout: float, *, own: bool) -> None:
        self.client = client
        self.own = own
        self._timeout = httpx.Timeout(timeout).as_dict()

    async def exchange(self, request: httpx.Request, max_bytes: int) -> Answer:
        request.extensions["timeout"] = self._timeout
        response = await self.client.send(request, stream=True)
        try:
            body = BoundedBody.for_response(response, max_bytes)
            if not response.is_stream_consumed:
                async for chunk in response.aiter_raw():
                    if body.feed(chunk):
                        break
        finally:
            await response.aclose()
        return Answer(response.status_code, response.headers, body.body())

    async def aclose(self) -> None:
        if self.own:
            await self.client.aclose()

    def abandon(self) -> None:
        """Nothing to do: httpx's pool holds no timers or tasks on the old loop."""


def httpx_client(timeout: float, max_connections: int) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` the introspector builds when it uses httpx."""
    # verify=True (httpx's default) on purpose: TLS is checked unless the user
    # passes a client of their own; ``verified_tls`` is the same context.
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_connections=max_connections),
    )


def given_client(client: httpx.AsyncClient, timeout: float) -> TransportChoice:
    """The user's client, as it is: its TLS, proxy and limits are the user's choice."""
    return TransportChoice(
        "httpx (the http_client you passed)",
        lambda: HttpxTransport(client, timeout, own=False),
    )


def default_choice(timeout: float, max_connections: int) -> TransportChoice:
    """aiohttp if the extra is installed and imports, else httpx; never a failure.

    A broken aiohttp install (an import that raises something else) must not
    take the API down: it is logged and httpx is used.
    """
    try:
        import aiohttp  # noqa: F401  (the extra: only its presence is asked here)

        from ._aiohttp_transport import AiohttpTransport
    except ImportError:
        pass
    except Exception as exc:
        logger.warning(
            "aiohttp is installed but failed to import (%s); introspection uses httpx. "
            "Reinstall genauth-guard[aiohttp] to get the faster transport back.",
            type(exc).__name__,
        )
    else:
        return TransportChoice(
            "aiohttp (genauth-guard[aiohttp])",
            lambda: AiohttpTransport(max_connections, verified_tls()),
        )
    return TransportChoice(
        "httpx (install genauth-guard[aiohttp] for a faster miss path)",
        lambda: HttpxTransport(httpx_client(timeout, max_connections), timeout, own=True),
    )
