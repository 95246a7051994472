"""A small orders API protected by GenAuthGuardWSGI (Flask).

Run it against the embedded dev authorization server:

    genauth-guard dev-server     # prints GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET
    export GENAUTH_APP_HOST=http://127.0.0.1:9000 GENAUTH_APP_ID=dev-client GENAUTH_APP_SECRET=...
    gunicorn --threads 8 examples.flask_app:app

(against GenAuth, export your application's values instead), or build it in
code with ``create_app(introspector)`` (the tests do).
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request

from genauth_guard import SyncIntrospector, get_token_info, require_scopes
from genauth_guard.wsgi import GenAuthGuardWSGI

ORDERS = [
    {"id": 1, "item": "keyboard", "owner": "alice"},
    {"id": 2, "item": "monitor", "owner": "bob"},
]


def create_app(introspector: SyncIntrospector) -> Flask:
    """The orders API behind the guard; ``/health`` is open."""
    app = Flask(__name__)

    @app.get("/health")
    def health() -> Response:
        return jsonify(status="ok")

    @app.get("/me")
    def me() -> Response:
        info = get_token_info(request)
        assert info is not None  # the guard let the request in
        return jsonify(
            # The user the token speaks for (its sub, else its username). A client
            # acting for itself has none: REMOTE_USER is unset, client_id names it.
            identity=request.environ.get("REMOTE_USER"),
            scopes=sorted(info.scopes),
            client_id=info.client_id,
            expires_at=info.exp,
        )

    @app.get("/orders")
    @require_scopes("orders:read")  # below the route: it wraps the view itself
    def list_orders() -> Response:
        return jsonify(orders=ORDERS)

    @app.post("/orders")
    @require_scopes("orders:write")
    def create_order() -> tuple[Response, int]:
        info = get_token_info(request)
        assert info is not None
        body = request.get_json(silent=True) or {}
        order = {
            "id": len(ORDERS) + 1,
            "item": str(body.get("item")),
            "owner": request.environ.get("REMOTE_USER"),  # None: a client acting for itself
            "client_id": info.client_id,
        }
        return jsonify(order), 201

    # Wrap wsgi_app, not app: `app` stays a Flask object (flask run, test_client).
    app.wsgi_app = GenAuthGuardWSGI(  # type: ignore[method-assign]
        app.wsgi_app, introspector=introspector, exclude_paths=["/health"]
    )
    return app


# GENAUTH_APP_HOST, GENAUTH_APP_ID, GENAUTH_APP_SECRET (and the other GENAUTH_* settings);
# a missing or wrong one stops the app here, with a message naming it. One introspector
# per process, shared by all its threads (gunicorn --threads): the cache and the single
# flight only help when they are shared.
app = create_app(SyncIntrospector.from_env())
