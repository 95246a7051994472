"""A refresh token is not an access token: the guard refuses it unless told otherwise.

A real introspection endpoint on 127.0.0.1 (``FaultyApp`` in its healthy
mode, answering with the claims a test gives each token) behind a real
guarded API: what a client sees is the status and the challenge.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, get_token_info
from genauth_guard.dev.testing import serve_in_thread

from .fault_upstream import FaultyApp

TOKENS = {
    "access-bearer": {"sub": "alice", "token_type": "Bearer"},
    "access-untyped": {"sub": "alice"},
    "refresh-rfc": {"sub": "alice", "token_type": "refresh_token"},
    "refresh-shouting": {"sub": "alice", "token_type": "REFRESH_TOKEN"},
    "refresh-keycloak": {"sub": "alice", "typ": "Refresh"},
    "refresh-keycloak-lower": {"sub": "alice", "typ": "refresh", "token_type": "Bearer"},
}


async def whoami(request: Request) -> PlainTextResponse:
    info = get_token_info(request)
    assert info is not None
    return PlainTextResponse(info.sub or "")


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    app = FaultyApp()
    app.tokens.update(TOKENS)
    with serve_in_thread(app) as url:
        yield url + "/introspect"


@contextmanager
def guarded_api(endpoint: str, **options: object) -> Iterator[str]:
    introspector = Introspector(
        endpoint,
        client_id="api",
        client_secret="api-secret",
        **options,  # type: ignore[arg-type]
    )
    app = GenAuthGuard(Starlette(routes=[Route("/me", whoami)]), introspector=introspector)
    with serve_in_thread(app) as url:
        yield url


def get_me(url: str, token: str) -> httpx.Response:
    return httpx.get(url + "/me", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "token", ["refresh-rfc", "refresh-shouting", "refresh-keycloak", "refresh-keycloak-lower"]
)
def test_a_refresh_token_is_refused_by_default(
    upstream: str, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    with guarded_api(upstream) as url, caplog.at_level(logging.INFO, logger="genauth_guard"):
        response = get_me(url, token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "refresh token" in caplog.text
    assert "token_type='refresh_token'" in caplog.text  # says how to accept them
    assert token not in caplog.text


@pytest.mark.parametrize("token", ["access-bearer", "access-untyped"])
def test_an_access_token_still_passes_by_default(upstream: str, token: str) -> None:
    with guarded_api(upstream) as url:
        response = get_me(url, token)
    assert response.status_code == 200
    assert response.text == "alice"


def test_token_type_refresh_token_accepts_refresh_tokens_only(upstream: str) -> None:
    with guarded_api(upstream, token_type="refresh_token") as url:
        assert get_me(url, "refresh-rfc").status_code == 200
        assert get_me(url, "refresh-shouting").status_code == 200
        assert get_me(url, "access-bearer").status_code == 401


def test_token_type_bearer_still_refuses_a_keycloak_refresh_token(upstream: str) -> None:
    """``typ: Refresh`` with ``token_type: Bearer``: asking for Bearer does not let it in."""
    with guarded_api(upstream, token_type="Bearer") as url:
        assert get_me(url, "access-bearer").status_code == 200
        assert get_me(url, "refresh-keycloak-lower").status_code == 401
