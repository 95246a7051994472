"""Constructors from GenAuth's names, the environment and discovery metadata.

Defined once, as classmethods building ``cls(...)``, so ``Introspector`` and
``SyncIntrospector`` both get them. The configuration logic itself is pure
and lives in ``genauth``, ``environment`` and ``discovery``; this module only
turns its settings into an introspector.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Self, Unpack

import httpx

from ._environment import settings_from_env
from ._genauth import DEFAULT_AUTH_METHOD, DEFAULT_PROTOCOL, ClientSettings, genauth_settings
from ._options import IntrospectorOptions, TuningOptions
from .discovery import ServerMetadata, discovered_settings, fetch_metadata


class IntrospectorFactories:
    """``from_genauth``, ``from_env`` and ``from_discovery`` for both drivers."""

    if TYPE_CHECKING:

        def __init__(
            self, introspection_endpoint: str, **options: Unpack[IntrospectorOptions]
        ) -> None: ...

    server_metadata: ServerMetadata | None = None
    """The discovery document the introspector was built from (``from_discovery``), if any."""

    @classmethod
    def from_genauth(
        cls,
        app_id: str,
        secret: str | None,
        app_host: str,
        protocol: str = DEFAULT_PROTOCOL,
        introspection_endpoint_auth_method: str = DEFAULT_AUTH_METHOD,
        revocation_endpoint_auth_method: str | None = None,
        *,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector for a GenAuth application, named the way GenAuth's SDK names it.

        ``app_host`` is the application's host (``https://YOUR_DOMAIN.genauth.ai``),
        ``protocol`` ``oidc`` or ``oauth``; the endpoints are
        ``{app_host}/{protocol}/token/introspection`` and ``.../revocation``.
        ``secret`` may be ``None`` only with ``none`` methods (a public client).
        ``revocation_endpoint_auth_method`` defaults to the introspection one.
        ``http_client``: this driver's kind of httpx client, if you manage it;
        ``options``: the constructor's tuning options (``cache_ttl``, ``timeout``...).
        """
        settings = genauth_settings(
            app_id,
            secret,
            app_host,
            protocol,
            introspection_endpoint_auth_method,
            revocation_endpoint_auth_method,
            allow_insecure_http=options.get("allow_insecure_http", False),
        )
        return cls._from_settings(settings, http_client, options)

    @classmethod
    def from_env(
        cls,
        prefix: str = "GENAUTH_",
        *,
        environ: Mapping[str, str] | None = None,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector configured by ``{prefix}*`` environment variables.

        ``GENAUTH_APP_ID``, ``GENAUTH_APP_SECRET``, ``GENAUTH_APP_HOST``,
        ``GENAUTH_PROTOCOL``... (the README lists them all); unset ones take
        ``from_genauth``'s defaults. ``options`` are defaults the environment
        overrides, so operators can tune a deployed app without a code change.
        ``environ`` replaces ``os.environ`` (tests, secrets loaded elsewhere).
        """
        settings, from_environment = settings_from_env(
            os.environ if environ is None else environ,
            prefix,
            allow_insecure_http=options.get("allow_insecure_http", False),
        )
        return cls._from_settings(settings, http_client, {**options, **from_environment})

    @classmethod
    def from_discovery(
        cls,
        issuer_or_metadata_url: str,
        client_id: str,
        client_secret: str | None = None,
        *,
        auth_method: str | None = None,
        revocation_auth_method: str | None = None,
        metadata_client: httpx.Client | None = None,
        http_client: httpx.AsyncClient | httpx.Client | None = None,
        **options: Unpack[TuningOptions],
    ) -> Self:
        """An introspector configured by the server's metadata (RFC 8414 / OpenID Discovery).

        ``issuer_or_metadata_url``: the issuer (GenAuth: ``{app_host}/oidc``)
        or the document's URL. The document must name that issuer. Without
        ``auth_method``, one the server advertises is chosen. The document is
        fetched once (synchronously: this runs at start-up, maybe before an
        event loop exists) and cached; ``metadata_client`` is an
        ``httpx.Client`` for that fetch. Raises ``ConfigurationError`` for a
        wrong or refused document, ``AuthorizationServerUnavailable`` when the
        server cannot be reached (retry the start-up later).
        """
        metadata = fetch_metadata(
            issuer_or_metadata_url,
            timeout=options.get("timeout", 5.0),
            allow_insecure_http=options.get("allow_insecure_http", False),
            http_client=metadata_client,
        )
        settings = discovered_settings(
            metadata, client_id, client_secret, auth_method, revocation_auth_method
        )
        introspector = cls._from_settings(settings, http_client, options)
        introspector.server_metadata = metadata
        return introspector

    @classmethod
    def _from_settings(
        cls,
        settings: ClientSettings,
        http_client: httpx.AsyncClient | httpx.Client | None,
        options: TuningOptions,
    ) -> Self:
        driver_options: dict[str, Any] = {} if http_client is None else {"http_client": http_client}
        return cls(
            settings.introspection_endpoint,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            auth_method=settings.auth_method,
            revocation_endpoint=settings.revocation_endpoint,
            revocation_auth_method=settings.revocation_auth_method,
            **options,
            **driver_options,
        )
