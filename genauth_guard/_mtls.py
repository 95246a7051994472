"""Certificate-bound access tokens (RFC 8705 3): the thumbprint of the client's certificate.

A token whose answer has ``cnf["x5t#S256"]`` passes only with the client
certificate of that SHA-256 thumbprint (base64url of the DER, the leaf
only). The certificate comes from one place, chosen at start-up:

- ``client_cert_header`` set: that header alone, filled by the TLS-terminating
  proxy, which must also strip it from what clients send. Two encodings:
  URL-encoded PEM (nginx ``$ssl_client_escaped_cert``, AWS ALB) or RFC 9440
  ``Client-Cert`` (a structured-field byte sequence, ``:base64 DER:``);
- else the server's own TLS layer: the ASGI TLS extension's leaf
  (``scope["extensions"]["tls"]["client_cert_chain"][0]``) or WSGI
  ``environ["SSL_CLIENT_CERT"]`` (Apache mod_ssl with ``+ExportCertData``).

The proxy or server verifies the certificate chain; this module only
hashes what it was given, and refuses (``CertificateError``) anything that
is not one well-formed certificate: a malformed header is never a pass.
Pure, no dependency: the thumbprint is a hash of the DER bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Final
from urllib.parse import unquote

from ._request_view import RequestView
from .errors import ConfigurationError

MAX_HEADER_LENGTH: Final = 16 * 1024
_PEM: Final = re.compile(
    r"\s*-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----\s*"
)
_SF_BINARY: Final = re.compile(r":([A-Za-z0-9+/]*=*):")
_HEADER_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_A_CERT_HEADER: Final = frozenset({"authorization", "dpop", "host", "cookie"})


class CertificateError(ValueError):
    """A client certificate that cannot be read; the message is safe to send and log."""


def _der_is_one_sequence(der: bytes) -> bool:
    """True when ``der`` is exactly one DER SEQUENCE (what an X.509 certificate is)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return len(der) == 2 + first
    count = first & 0x7F
    if not 1 <= count <= 4 or len(der) < 2 + count:
        return False
    length = int.from_bytes(der[2 : 2 + count], "big")
    return length >= 0x80 and len(der) == 2 + count + length


def _checked(der: bytes) -> bytes:
    if not _der_is_one_sequence(der):
        raise CertificateError("it is not a DER-encoded certificate")
    return der


def der_from_pem(pem: str) -> bytes:
    """The DER bytes of exactly one PEM ``CERTIFICATE`` block (``CertificateError`` otherwise)."""
    match = _PEM.fullmatch(pem)
    if match is None:
        raise CertificateError("it is not one PEM certificate")
    try:
        der = base64.b64decode("".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        raise CertificateError("its PEM body is not base64") from None
    return _checked(der)


def der_from_header(value: str) -> bytes:
    """The DER bytes in a proxy's header: RFC 9440 ``:base64:`` or URL-encoded PEM."""
    value = value.strip(" \t")
    if len(value) > MAX_HEADER_LENGTH:
        raise CertificateError("the header is too long")
    if value.startswith(":"):
        match = _SF_BINARY.fullmatch(value)
        if match is None:
            raise CertificateError("it is not an RFC 9440 byte sequence (:base64:)")
        body = match.group(1).rstrip("=")
        try:  # RFC 8941 4.2.7: accept missing padding
            der = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise CertificateError("it is not base64") from None
        return _checked(der)
    return der_from_pem(unquote(value, errors="strict"))


def thumbprint(der: bytes) -> str:
    """RFC 8705 3.1 ``x5t#S256``: base64url (no padding) of the SHA-256 of the DER."""
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode("ascii")


def check_header_name(name: str | None) -> str | None:
    """The ``client_cert_header`` option in lower case; ``ConfigurationError`` if unusable."""
    if name is None:
        return None
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        raise ConfigurationError(
            f"client_cert_header={name!r} must be an HTTP header name, e.g. 'Client-Cert' "
            "(RFC 9440) or 'X-SSL-Client-Cert' (nginx: $ssl_client_escaped_cert)."
        )
    if name.lower() in _NOT_A_CERT_HEADER:
        raise ConfigurationError(f"client_cert_header={name!r} names a header clients send.")
    return name.lower()


class CertificateSource:
    """Where one guard reads the client certificate: a trusted header, or the TLS layer."""

    def __init__(self, header: str | None) -> None:
        self.header = header

    def thumbprint(self, request: RequestView) -> str | None:
        """The leaf certificate's ``x5t#S256``, or ``None`` when the request has none.

        Raises ``CertificateError`` for a certificate or header that cannot
        be read, two of them, or a UTF-8 value that no proxy would send.
        """
        try:
            if self.header is None:
                pem = request.tls_client_certificate()
                return None if pem is None else thumbprint(der_from_pem(pem))
            values = [value for value in request.headers(self.header) if value.strip(" \t")]
            if not values:
                return None
            if len(values) > 1 or "," in values[0]:
                raise CertificateError(f"the request has more than one {self.header} header")
            return thumbprint(der_from_header(values[0]))
        except UnicodeError:
            raise CertificateError("it is not ASCII") from None
