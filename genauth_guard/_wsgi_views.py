"""The request of a WSGI-side view, and how its framework takes a refusal.

``require_scopes`` wraps Flask views (no request argument: ``flask.request``),
Django views (``HttpRequest`` first), werkzeug views (a ``Request``) and bare
WSGI apps (``environ, start_response``). None of these frameworks is a
dependency: they are recognised by shape, and imported only once a request of
theirs is in hand (so they are installed and loaded). ``answer_wsgi`` is also
how ``GenAuthGuardWSGI`` writes its refusals: one writer for both.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._challenge import Rejection

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

Responder = Callable[[Rejection, str], Any]
"""Turns a refusal (and the realm) into what the view's framework expects back."""


def answer_wsgi(rejection: Rejection, realm: str, start_response: StartResponse) -> list[bytes]:
    """Send ``rejection`` the plain WSGI way; returns the response body iterable."""
    body = rejection.body()
    headers = [*rejection.headers(realm), ("Content-Length", str(len(body)))]
    start_response(f"{rejection.status} {HTTPStatus(rejection.status).phrase}", headers)
    return [body]


def _django_response(rejection: Rejection, realm: str) -> Any:
    # By name: Django ships no type information, and is no dependency of ours.
    http = importlib.import_module("django.http")
    return http.HttpResponse(
        rejection.body(), status=rejection.status, headers=dict(rejection.headers(realm))
    )


def _werkzeug_response(rejection: Rejection, realm: str) -> Any:
    from werkzeug.wrappers import Response

    return Response(rejection.body(), status=rejection.status, headers=rejection.headers(realm))


def _flask_response(rejection: Rejection, realm: str) -> Any:
    import flask

    return flask.current_app.response_class(
        rejection.body(), status=rejection.status, headers=rejection.headers(realm)
    )


def _is_environ(value: object) -> bool:
    return isinstance(value, Mapping) and "wsgi.version" in value


def find_wsgi_request(
    args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, Responder] | None:
    """The request a WSGI-side view was called with and its responder, or ``None``."""
    values = (*args, *kwargs.values())
    for index, value in enumerate(values):
        if _is_environ(value) and index + 1 < len(values) and callable(values[index + 1]):
            return value, functools.partial(answer_wsgi, start_response=values[index + 1])
        # Django's HttpRequest (and DRF's Request) keep the environ in META;
        # checked before ``environ``, which Django's WSGIRequest has too.
        if isinstance(getattr(value, "META", None), Mapping):
            return value, _django_response
        if isinstance(getattr(value, "environ", None), Mapping):
            return value, _werkzeug_response
    if "flask" in sys.modules:  # a Flask view takes no request: it is flask.request
        import flask

        if flask.has_request_context():
            return flask.request, _flask_response
    return None
