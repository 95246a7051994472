"""The resource server's own credentials: what every client authentication method may use.

Its own module so the methods (``_client_auth``, ``_client_assertion``)
share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class ClientCredentials:
    """Everything a method may need to prove the client's identity (secrets never in ``repr``).

    ``issuer``: the authorization server's issuer when known (discovery,
    GenAuth), the audience of signed assertions. ``private_key`` (PEM, JWK
    or key object), ``key_id``, ``assertion_alg`` and
    ``assertion_audience`` (overrides the issuer) serve the signed methods
    (``_client_assertion``).
    """

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    issuer: str | None = None
    private_key: object = field(default=None, repr=False)
    key_id: str | None = None
    assertion_alg: str | None = None
    assertion_audience: str | None = None

    def with_audience(self) -> ClientCredentials:
        """These credentials with ``assertion_audience`` set: the override, else the issuer."""
        return replace(self, assertion_audience=self.assertion_audience or self.issuer)
