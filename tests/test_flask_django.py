"""Flask and Django behind GenAuthGuardWSGI, with require_scopes on their views.

The example apps (examples/flask_app.py, examples/django_app/) are tested
in-process through ``httpx.WSGITransport`` and as deployed: gunicorn with
threads on 127.0.0.1, in front of a real dev authorization server, configured
the way their docstrings say: the variables ``genauth-guard dev-server`` prints.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from flask import Flask, jsonify
from flask.views import MethodView

from genauth_guard import SyncIntrospector, TokenInfo, get_token_info, require_scopes
from genauth_guard._environment import ENV_VARIABLES
from genauth_guard.wsgi import GenAuthGuardWSGI

from .conftest import RunningAuthServer
from .wsgi_support import GatedAuthServer, gated_auth_server, gunicorn

# The DPoP challenge every refusal adds while dpop="allowed" (the default).
DPOP_OFFER = ', DPoP algs="ES256 RS256 PS256 EdDSA"'
READ_DENIED = (
    'Bearer realm="api", error="insufficient_scope", error_description='
    '"The access token lacks the scope this resource needs: orders:read.", '
    'scope="orders:read"'
)
READ_DENIED_BODY = {
    "error": "insufficient_scope",
    "error_description": "The access token lacks the scope this resource needs: orders:read.",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_read_denied(response: httpx.Response) -> None:
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == READ_DENIED + DPOP_OFFER
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == READ_DENIED_BODY


def example_env(app_host: str) -> dict[str, str]:
    """What ``genauth-guard dev-server`` prints, and nothing of this machine's GENAUTH_*."""
    env = {f"GENAUTH_{name}": "" for name in ENV_VARIABLES}  # empty counts as unset
    env.update(
        GENAUTH_APP_HOST=app_host, GENAUTH_APP_ID="post-client", GENAUTH_APP_SECRET="post-secret"
    )
    return env


@contextmanager
def example_environ(app_host: str) -> Iterator[pytest.MonkeyPatch]:
    """While importing an example: the environment its module-level app is built from."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in example_env(app_host).items():
            patch.setenv(name, value)
        yield patch


@pytest.fixture(scope="module")
def introspector(auth_server: RunningAuthServer) -> Iterator[SyncIntrospector]:
    with SyncIntrospector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    ) as introspector:
        yield introspector


# ---------------------------------------------------------------- Flask


@pytest.fixture(scope="module")
def flask_app(introspector: SyncIntrospector, auth_server: RunningAuthServer) -> Flask:
    with example_environ(auth_server.url):
        from examples.flask_app import create_app

    app = create_app(introspector)

    @app.get("/orders/<int:order_id>")
    @require_scopes("orders:read")
    def one_order(order_id: int) -> Any:
        return jsonify(id=order_id)

    @app.get("/async-orders")
    @require_scopes("orders:read")
    async def async_orders() -> Any:
        return jsonify(orders=[])

    class Reports(MethodView):
        @require_scopes("reports:read")
        def get(self) -> Any:
            info = get_token_info(app_request())
            return jsonify(sub=info.sub if info else None)

    app.add_url_rule("/reports", view_func=Reports.as_view("reports"))
    return app


def app_request() -> Any:
    from flask import request

    return request


@pytest.fixture(scope="module")
def flask_client(flask_app: Flask) -> Iterator[httpx.Client]:
    transport = httpx.WSGITransport(app=flask_app)
    with httpx.Client(transport=transport, base_url="http://flask") as client:
        yield client


def test_flask_view_with_the_scope_runs(
    flask_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    response = flask_client.get("/orders", headers=bearer(token))
    assert response.status_code == 200
    assert [o["item"] for o in response.json()["orders"]] == ["keyboard", "monitor"]


def test_flask_view_without_the_scope_is_403_insufficient_scope(
    flask_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint("alice", "profile")
    assert_read_denied(flask_client.get("/orders", headers=bearer(token)))
    assert_read_denied(flask_client.get("/orders/7", headers=bearer(token)))
    assert_read_denied(flask_client.get("/async-orders", headers=bearer(token)))


def test_flask_views_with_arguments_async_and_method_views(
    flask_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint("alice", "orders:read reports:read")
    assert flask_client.get("/orders/7", headers=bearer(token)).json() == {"id": 7}
    assert flask_client.get("/async-orders", headers=bearer(token)).json() == {"orders": []}
    assert flask_client.get("/reports", headers=bearer(token)).json() == {"sub": "alice"}
    reader = auth_server.server.mint("bob", "orders:read")
    refused = flask_client.get("/reports", headers=bearer(reader))
    assert refused.status_code == 403
    assert 'scope="reports:read"' in refused.headers["www-authenticate"]


def test_flask_me_sees_remote_user_and_token_info(
    flask_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint(None, "orders:read", username="carol")
    body = flask_client.get("/me", headers=bearer(token)).json()
    assert body["identity"] == "carol"
    assert body["scopes"] == ["orders:read"]
    assert body["client_id"] == "post-client"


def test_flask_post_with_write_scope(
    flask_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    writer = auth_server.server.mint("dave", "orders:write")
    created = flask_client.post("/orders", headers=bearer(writer), json={"item": "mouse"})
    assert created.status_code == 201
    assert created.json()["owner"] == "dave"
    reader = auth_server.server.mint("dave", "orders:read")
    assert flask_client.post("/orders", headers=bearer(reader), json={}).status_code == 403


def test_flask_guard_and_open_paths(flask_client: httpx.Client) -> None:
    assert flask_client.get("/health").json() == {"status": "ok"}
    refused = flask_client.get("/orders")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="api"' + DPOP_OFFER


def test_flask_test_client_goes_through_the_guard(
    flask_app: Flask, auth_server: RunningAuthServer
) -> None:
    client = flask_app.test_client()
    assert client.get("/orders").status_code == 401
    token = auth_server.server.mint("alice", "orders:read")
    assert client.get("/orders", headers=bearer(token)).status_code == 200


def test_flask_view_without_the_guard_fails_closed() -> None:
    app = Flask(__name__)

    @app.get("/orders")
    @require_scopes("orders:read")
    def orders() -> Any:
        return jsonify(orders=[])

    response = app.test_client().get("/orders", headers=bearer("anything"))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == READ_DENIED  # no guard: no DPoP offered


def test_a_flask_view_called_outside_a_request_says_what_to_do() -> None:
    @require_scopes("orders:read")
    def orders() -> str:
        return "orders"

    with pytest.raises(TypeError, match="Flask view"):
        orders()


# ---------------------------------------------------------------- Django


@pytest.fixture(scope="module")
def django_wsgi(introspector: SyncIntrospector, auth_server: RunningAuthServer) -> GenAuthGuardWSGI:
    with example_environ(auth_server.url) as patch:
        # The example's settings module; only for this import, so nothing else sees it.
        patch.setenv("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
        from examples.django_app.wsgi import create_application

        return create_application(introspector)


@pytest.fixture(scope="module")
def django_client(django_wsgi: GenAuthGuardWSGI) -> Iterator[httpx.Client]:
    transport = httpx.WSGITransport(app=django_wsgi)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        yield client


def test_django_view_with_the_scope_runs(
    django_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint("alice", "orders:read")
    response = django_client.get("/orders", headers=bearer(token))
    assert response.status_code == 200
    assert len(response.json()["orders"]) == 2


def test_django_view_without_the_scope_is_403_insufficient_scope(
    django_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint("alice", "profile")
    assert_read_denied(django_client.get("/orders", headers=bearer(token)))


def test_django_me_sees_remote_user_and_token_info(
    django_client: httpx.Client, auth_server: RunningAuthServer
) -> None:
    token = auth_server.server.mint(None, client_id="machine-client", username="dave")
    body = django_client.get("/me", headers=bearer(token)).json()
    assert body["identity"] == "dave"
    assert body["client_id"] == "machine-client"


def test_django_guard_and_open_paths(django_client: httpx.Client) -> None:
    assert django_client.get("/health").json() == {"status": "ok"}
    refused = django_client.get("/orders")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="api"' + DPOP_OFFER
    assert refused.json()["error"] == "unauthorized"


def test_django_class_based_views(
    django_wsgi: GenAuthGuardWSGI, introspector: SyncIntrospector, auth_server: RunningAuthServer
) -> None:
    from django.http import HttpRequest, JsonResponse
    from django.test import RequestFactory
    from django.utils.decorators import method_decorator
    from django.views import View

    class Reports(View):
        @method_decorator(require_scopes("reports:read"))
        def get(self, request: HttpRequest) -> JsonResponse:
            info = get_token_info(request)
            return JsonResponse({"sub": info.sub if info else None})

    @method_decorator(require_scopes("reports:write"), name="dispatch")
    class WriteReports(View):
        def get(self, request: HttpRequest) -> JsonResponse:
            return JsonResponse({"written": True})

    def request_with(token: str) -> HttpRequest:
        # What the guard puts in the environ (Django's META) for an accepted request.
        request = RequestFactory().get("/reports")
        request.META["genauth_guard.token_info"] = introspector.introspect(token)
        return request

    reader = auth_server.server.mint("alice", "reports:read")
    ok = Reports.as_view()(request_with(reader))
    assert (ok.status_code, ok.content) == (200, b'{"sub": "alice"}')
    refused = WriteReports.as_view()(request_with(reader))
    assert refused.status_code == 403
    assert refused.headers["WWW-Authenticate"].endswith('scope="reports:write"')
    assert refused.headers["Content-Type"] == "application/json"
    assert isinstance(get_token_info(request_with(reader)), TokenInfo)


# ---------------------------------------------------------------- under gunicorn


@pytest.fixture(scope="module")
def gated() -> Iterator[GatedAuthServer]:
    with gated_auth_server() as server:
        yield server


def gunicorn_env(gated: GatedAuthServer) -> dict[str, str]:
    return example_env(gated.url)


def test_flask_example_under_gunicorn_threads(gated: GatedAuthServer) -> None:
    token = gated.server.mint("alice", "orders:read")
    no_scope = gated.server.mint("bob")
    with gunicorn("examples.flask_app:app", gunicorn_env(gated), threads=8) as server:
        url = server.url
        barrier = threading.Barrier(8)

        def fetch(_: int) -> int:
            barrier.wait(timeout=10)
            return httpx.get(url + "/orders", headers=bearer(token), timeout=10).status_code

        before = gated.calls
        with gated.slowed(0.5), ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(fetch, range(8)))
        calls = gated.calls - before
        denied = httpx.get(url + "/orders", headers=bearer(no_scope))
        two_headers = httpx.get(url + "/orders", headers=[("Authorization", f"Bearer {token}")] * 2)
        me = httpx.get(url + "/me", headers=bearer(token)).json()
    assert statuses == [200] * 8
    assert calls == 1  # eight worker threads, one introspection
    assert_read_denied(denied)
    assert two_headers.status_code == 400
    assert "more than one Authorization header" in two_headers.json()["error_description"]
    assert me["identity"] == "alice"


def test_django_example_under_gunicorn(gated: GatedAuthServer) -> None:
    token = gated.server.mint("alice", "orders:read")
    no_scope = gated.server.mint("bob")
    with (
        gunicorn("examples.django_app.wsgi:application", gunicorn_env(gated)) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        ok = client.get("/orders", headers=bearer(token))
        denied = client.get("/orders", headers=bearer(no_scope))
        missing = client.get("/orders")
        two_headers = client.get(
            "/orders",
            headers=[("Authorization", "Basic dXNlcjpwYXNz"), ("Authorization", "Bearer x")],
        )
        me = client.get("/me", headers=bearer(token))
    assert ok.status_code == 200
    assert_read_denied(denied)
    assert (missing.status_code, missing.headers["www-authenticate"]) == (
        401,
        'Bearer realm="api"' + DPOP_OFFER,
    )
    assert two_headers.status_code == 400
    assert me.json()["identity"] == "alice"
