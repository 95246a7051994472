"""A real TLS-terminating reverse proxy that asks for client certificates.

What nginx does with ``ssl_verify_client optional`` and
``proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert``: it
verifies the client's certificate against a CA, strips any certificate
header the client sent, and hands the backend the leaf as URL-encoded PEM
(``pem``) or as an RFC 9440 ``Client-Cert`` byte sequence (``rfc9440``).
Plain asyncio in a thread; one request per connection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import trustme

PROXY_HEADERS = {"pem": "X-SSL-Client-Cert", "rfc9440": "Client-Cert"}


def x5t_s256(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def leaf_der(cert: trustme.LeafCert) -> bytes:
    pem = cert.cert_chain_pems[0].bytes().decode()
    return ssl.PEM_cert_to_DER_cert(pem)


def leaf_pem(cert: trustme.LeafCert) -> str:
    return cert.cert_chain_pems[0].bytes().decode()


def header_value(der: bytes, encoding: str) -> str:
    if encoding == "rfc9440":
        return ":" + base64.b64encode(der).decode() + ":"
    return quote(ssl.DER_cert_to_PEM_cert(der), safe="")


@dataclass
class Proxy:
    url: str
    ca: trustme.CA

    def client_context(self, cert: trustme.LeafCert | None) -> ssl.SSLContext:
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context


@contextmanager
def mtls_proxy(ca: trustme.CA, backend: str, encoding: str = "pem") -> Iterator[Proxy]:
    """Serve ``https://127.0.0.1:port`` in front of ``backend`` (``http://host:port``)."""
    header = PROXY_HEADERS[encoding].lower().encode()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca.configure_trust(server_context)
    server_context.verify_mode = ssl.CERT_OPTIONAL
    target = urlsplit(backend)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, object] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")[:-2]
            kept = [line for line in lines[1:] if not line.lower().startswith(header + b":")]
            kept = [line for line in kept if not line.lower().startswith(b"connection:")]
            der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            if der:
                kept.append(header + b": " + header_value(der, encoding).encode())
            kept.append(b"Connection: close")
            up_reader, up_writer = await asyncio.open_connection(target.hostname, target.port)
            up_writer.write(b"\r\n".join([lines[0], *kept]) + b"\r\n\r\n")
            await up_writer.drain()
            writer.write(await up_reader.read())
            await writer.drain()
            up_writer.close()
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        state["server"] = server
        state["port"] = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            with contextlib.suppress(asyncio.CancelledError):  # close() ends serve_forever
                await server.serve_forever()

    thread = threading.Thread(target=lambda: loop.run_until_complete(main()), daemon=True)
    thread.start()
    started.wait(10)
    try:
        yield Proxy(f"https://127.0.0.1:{state['port']}", ca)
    finally:
        loop.call_soon_threadsafe(state["server"].close)  # type: ignore[attr-defined]
        thread.join(timeout=10)
