"""The pytest plugin, used as a user's suite uses it: found through its entry point."""

from __future__ import annotations

import pytest

from genauth_guard.dev.pytest_plugin import DevServerHandle

pytest_plugins = ["pytester"]

PROTECTED_APP_TESTS = """
import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse
from starlette.routing import Route

from genauth_guard import GenAuthGuard, require_scopes
from genauth_guard.dev.testing import serve_in_thread


@require_scopes("orders:read")
async def orders(request):
    return JSONResponse({"sub": request.user.identity})


@pytest.fixture(scope="session")
def api_url(genauth_dev_server):
    introspector = genauth_dev_server.introspector(cache_ttl=0)
    app = Starlette(
        routes=[Route("/orders", orders)],
        middleware=[Middleware(GenAuthGuard, introspector=introspector)],
    )
    with serve_in_thread(app) as url:
        yield url


def get(url, token):
    return httpx.get(url + "/orders", headers={"Authorization": "Bearer " + token})


def test_reader_gets_in(api_url, genauth_token):
    response = get(api_url, genauth_token("alice", "orders:read"))
    assert response.status_code == 200
    assert response.json() == {"sub": "alice"}


def test_missing_scope_is_403(api_url, genauth_token):
    assert get(api_url, genauth_token("bob", ["profile"])).status_code == 403


def test_revoked_token_is_401(api_url, genauth_dev_server):
    token = genauth_dev_server.mint("carol", "orders:read")
    assert get(api_url, token).status_code == 200
    genauth_dev_server.revoke(token)
    assert get(api_url, token).status_code == 401


def test_options_fixture_configures_the_client(genauth_dev_server):
    assert genauth_dev_server.client_id == "my-api"
    assert genauth_dev_server.auth_method == "client_secret_basic"
    assert genauth_dev_server.introspection_endpoint == (
        genauth_dev_server.url + "/oidc/token/introspection"
    )
    answer = httpx.post(
        genauth_dev_server.introspection_endpoint,
        data={"token": genauth_dev_server.mint("dave")},
        auth=("my-api", "my-secret"),
    ).json()
    assert answer["active"] is True
    assert answer["exp"] - answer["iat"] == 60


def test_sync_introspector(genauth_dev_server, genauth_token):
    introspector = genauth_dev_server.sync_introspector()
    info = introspector.introspect(genauth_token("erin", "a b"))
    assert (info.sub, info.scopes) == ("erin", frozenset({"a", "b"}))
"""

OPTIONS_CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def genauth_dev_server_options():
    return {
        "client_id": "my-api",
        "client_secret": "my-secret",
        "auth_method": "client_secret_basic",
        "token_lifetime": 60,
    }
"""


def test_a_suite_tests_its_protected_app_with_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(OPTIONS_CONFTEST)
    pytester.makepyfile(test_orders=PROTECTED_APP_TESTS)
    # A subprocess, as a user's suite runs: the plugin must come from its entry point.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


LOGIN_FLOW_TESTS = """
import pytest
import httpx
from genauth import AuthenticationClient
from genauth_guard.dev.server import DevUser

CALLBACK = "http://127.0.0.1:3000/callback"

@pytest.fixture(scope="session")
def genauth_dev_server_options():
    return {
        "client_id": "web",
        "client_secret": "web-secret",
        "redirect_uris": [CALLBACK],
        "users": [DevUser("erin", email="erin@example.com")],
        "auto_approve": True,
    }

def test_login_flow(genauth_dev_server):
    sdk = AuthenticationClient(app_id="web", app_host=genauth_dev_server.url,
                               app_secret="web-secret", redirect_uri=CALLBACK)
    answer = httpx.get(sdk.build_authorize_url(scope="openid email"))
    code = httpx.URL(answer.headers["location"]).params["code"]
    tokens = sdk.get_access_token_by_code(code)
    assert sdk.get_user_info_by_access_token(tokens["access_token"])["email"] == "erin@example.com"
"""


def test_the_options_fixture_sets_up_a_login_flow(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_login=LOGIN_FLOW_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_without_uvicorn_only_the_tests_using_the_server_fail(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("import sys\nsys.modules['uvicorn'] = None  # not installed\n")
    pytester.makepyfile(
        test_mixed="""
        def test_unrelated():
            assert sum([1, 2]) == 3

        def test_needs_the_server(genauth_token):
            genauth_token("alice")
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["genauth_dev_server: serving needs uvicorn: pip install 'genauth-guard[[]dev-server[]]'"]
    )
    result.stdout.no_fnmatch_line("*During handling*")


# ---------------------------------------------------------------- this suite uses it too


@pytest.mark.anyio
async def test_async_introspector_factory(genauth_dev_server: DevServerHandle) -> None:
    token = genauth_dev_server.mint("frank", "orders:read")
    async with genauth_dev_server.introspector() as introspector:
        info = await introspector.introspect(token)
    assert info.sub == "frank"
    assert info.client_id == genauth_dev_server.client_id
    assert genauth_dev_server.client_secret not in repr(genauth_dev_server)


def test_the_server_is_shared_by_the_session(
    genauth_dev_server: DevServerHandle, request: pytest.FixtureRequest
) -> None:
    assert request.getfixturevalue("genauth_dev_server") is genauth_dev_server
    assert genauth_dev_server.url.startswith("http://127.0.0.1:")
    assert genauth_dev_server.server.issuer == genauth_dev_server.url
