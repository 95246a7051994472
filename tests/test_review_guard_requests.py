"""How both guards read a request's credentials: the same answer, byte for byte.

- A token in the URL is refused (or, with a header, is a second credential)
  whatever way its parameter name is percent-encoded: ``access%5Ftoken`` is
  ``access_token`` to every framework behind the guard.
- ``Authorization: Bearer abc, def ghi`` is two credentials folded into one
  header on both guards (WSGI cannot tell it from two headers).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, Introspector, SyncIntrospector
from genauth_guard.dev.testing import serve_in_thread
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import werkzeug_server

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CREDENTIALS = {"client_id": "post-client", "client_secret": "post-secret"}
TWO_HEADERS = "The request has more than one Authorization header; send the token once."
TWO_PLACES = (
    "The request carries the access token in more than one place; send it only in the "
    "Authorization header."
)
NOT_IN_URL = (
    "Access tokens in the URL are not accepted (they leak into logs); send "
    "'Authorization: Bearer <token>' instead."
)


async def asgi_ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("let in")


def wsgi_ok(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [b"let in"]


@dataclass
class Both:
    auth: RunningAuthServer
    urls: dict[str, str]  # guard kind -> base URL

    def get(self, target: str, headers: Any = None) -> dict[str, httpx.Response]:
        return {kind: httpx.get(url + target, headers=headers) for kind, url in self.urls.items()}


def serve_both(auth: RunningAuthServer, **options: Any) -> Iterator[Both]:
    asgi = GenAuthGuard(
        Starlette(routes=[Route("/{path:path}", asgi_ok)]),
        introspector=Introspector(auth.endpoint(), **CREDENTIALS),
        **options,
    )
    with SyncIntrospector(auth.endpoint(), **CREDENTIALS) as sync:
        wsgi = GenAuthGuardWSGI(wsgi_ok, introspector=sync, **options)
        with serve_in_thread(asgi) as asgi_url, werkzeug_server(wsgi) as wsgi_url:
            yield Both(auth, {"asgi": asgi_url, "wsgi": wsgi_url})


@pytest.fixture(scope="module")
def both(auth_server: RunningAuthServer) -> Iterator[Both]:
    yield from serve_both(auth_server, realm="orders-api")


@pytest.fixture(scope="module")
def both_allowing_query(auth_server: RunningAuthServer) -> Iterator[Both]:
    yield from serve_both(auth_server, realm="orders-api", allow_query_token=True)


# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'


def answer(response: httpx.Response) -> tuple[int, dict[str, str | None], bytes]:
    names = ("content-type", "cache-control", "www-authenticate", "content-length")
    return response.status_code, {n: response.headers.get(n) for n in names}, response.content


def assert_identical_400(responses: dict[str, httpx.Response], description: str) -> None:
    assert answer(responses["asgi"]) == answer(responses["wsgi"])
    response = responses["asgi"]
    assert response.status_code == 400
    assert json.loads(response.content) == {
        "error": "invalid_request",
        "error_description": description,
    }
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="orders-api", error="invalid_request", error_description="{description}"'
        + DPOP_OFFER
    )


ENCODED_NAMES = ["access%5Ftoken", "%61ccess_token", "%61%63%63%65%73%73%5f%74%6f%6b%65%6e"]


@pytest.mark.parametrize("name", ENCODED_NAMES)
def test_an_encoded_query_token_beside_a_header_is_two_credentials(both: Both, name: str) -> None:
    token = both.auth.server.mint("alice")
    responses = both.get(f"/me?{name}={token}", {"Authorization": f"Bearer {token}"})
    assert_identical_400(responses, TWO_PLACES)


@pytest.mark.parametrize("name", ENCODED_NAMES)
def test_an_encoded_query_token_alone_is_refused_by_default(both: Both, name: str) -> None:
    token = both.auth.server.mint("alice")
    assert_identical_400(both.get(f"/me?page=2&{name}={token}"), NOT_IN_URL)


@pytest.mark.parametrize("name", ENCODED_NAMES)
def test_an_encoded_query_token_is_the_access_token_when_allowed(
    both_allowing_query: Both, name: str
) -> None:
    token = both_allowing_query.auth.server.mint("alice")
    for response in both_allowing_query.get(f"/me?{name}={token}").values():
        assert (response.status_code, response.text) == (200, "let in")
    two = both_allowing_query.get(f"/me?{name}={token}", {"Authorization": f"Bearer {token}"})
    assert_identical_400(two, TWO_PLACES)


def test_other_query_strings_still_pass(both: Both) -> None:
    token = both.auth.server.mint("alice")
    for query in ("q=access", "q=100%25", "access_tokens=1", "x_access_token=1"):
        for response in both.get(f"/me?{query}", {"Authorization": f"Bearer {token}"}).values():
            assert (response.status_code, response.text) == (200, "let in"), query


@pytest.mark.parametrize(
    "header",
    [
        "Bearer abc, def ghi",
        "Bearer abc,Bearer def",
        "Basic dXNlcjpwYXNz, Bearer abc",
        "Bearer abc, Basic dXNlcjpwYXNz",
    ],
)
def test_two_credentials_in_one_header_get_one_answer_from_both_guards(
    both: Both, header: str
) -> None:
    assert_identical_400(both.get("/me", {"Authorization": header}), TWO_HEADERS)


def test_a_comma_inside_one_credential_is_still_one_credential(both: Both) -> None:
    responses = both.get("/me", {"Authorization": "Bearer a,b"})
    assert answer(responses["asgi"]) == answer(responses["wsgi"])
    assert responses["asgi"].status_code == 400
    assert "characters a bearer token cannot have" in responses["asgi"].text
    digest = 'Digest username="a, Bearer b", realm="x",qop=auth'
    responses = both.get("/me", {"Authorization": digest})
    assert answer(responses["asgi"]) == answer(responses["wsgi"])
    assert responses["asgi"].status_code == 401  # another scheme: no bearer token
