"""Every way a ``Rejection`` becomes a framework's answer, in one place.

The guards and ``require_scopes`` decide *that* a request is refused and
why (a ``Rejection``); this module writes it: raw ASGI messages (or a
WebSocket close before accept), plain WSGI, and the response objects of
Starlette, FastAPI, Django, werkzeug and Flask for decorated views. None of
these frameworks is imported before a request of theirs is in hand, so a
WSGI app never loads Starlette. It also finds the request a decorated view
was called with (``find_request``): by shape, without importing anything.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ._challenge import Rejection
from ._resource_metadata import DocumentAnswer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse

Responder = Callable[[Rejection, str], Any]
"""Turns a refusal (and the realm) into what the view's framework expects back."""

WEBSOCKET_POLICY_VIOLATION = 1008
"""The close code of a refused WebSocket (before accept: the client sees HTTP 403)."""


# ---------------------------------------------------------------- ASGI


async def send_asgi(
    rejection: Rejection,
    realm: str,
    scope_type: str,
    send: Callable[[dict[str, Any]], Any],
) -> None:
    """Answer ``rejection`` with raw ASGI messages; a WebSocket is closed before accept."""
    if scope_type == "websocket":
        await send(
            {
                "type": "websocket.close",
                "code": WEBSOCKET_POLICY_VIOLATION,
                "reason": rejection.error or "unauthorized",
            }
        )
        return
    body = rejection.body()
    headers = [(k.lower().encode(), v.encode()) for k, v in rejection.headers(realm)]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": rejection.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_asgi_document(answer: DocumentAnswer, send: Callable[[dict[str, Any]], Any]) -> None:
    """Send an answer the guard writes whole (the RFC 9728 document, its preflight, a 405)."""
    headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def starlette_response(rejection: Rejection, realm: str) -> Any:
    """A Starlette ``Response`` for ``rejection`` (a decorated Starlette endpoint)."""
    from starlette.responses import Response

    return Response(
        rejection.body(), status_code=rejection.status, headers=dict(rejection.headers(realm))
    )


def http_exception(rejection: Rejection, realm: str) -> Exception:
    """``rejection`` as Starlette's ``HTTPException`` (FastAPI dependencies raise it)."""
    from starlette.exceptions import HTTPException

    return HTTPException(
        rejection.status, rejection.description, headers=dict(rejection.headers(realm))
    )


class WebSocketRefusal:
    """What a refused WebSocket endpoint returns instead of a response: a close before accept.

    The ASGI server answers the handshake with 403; the endpoint never runs.
    """

    def __init__(self, websocket: Any, rejection: Rejection) -> None:
        self.websocket = websocket
        self.reason = rejection.error or "insufficient_scope"

    async def close(self) -> None:
        await self.websocket.close(code=WEBSOCKET_POLICY_VIOLATION, reason=self.reason)


def _refuse_websocket(websocket: Any) -> Responder:
    return lambda rejection, realm: WebSocketRefusal(websocket, rejection)


def _asgi_connection(value: object) -> str | None:
    """``"http"``/``"websocket"`` for a Starlette ``Request``/``WebSocket``, else ``None``.

    By shape (an ASGI scope in ``.scope``), so Starlette is not imported.
    """
    scope = getattr(value, "scope", None)
    if isinstance(scope, Mapping) and scope.get("type") in ("http", "websocket"):
        return str(scope["type"])
    return None


def find_request(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> tuple[Any, Responder]:
    """The request a decorated endpoint was called with, and how its framework takes a 403.

    Starlette's ``WebSocket`` and ``Request`` first; then Django, werkzeug,
    Flask (no request argument) and bare WSGI apps, recognised without
    importing any of them.
    """
    for value in (*args, *kwargs.values()):
        kind = _asgi_connection(value)
        if kind == "websocket":
            return value, _refuse_websocket(value)
        if kind == "http":
            return value, starlette_response
    found = find_wsgi_request(args, kwargs)
    if found is not None:
        return found
    raise TypeError(
        "require_scopes: found no request to check; decorate a Starlette endpoint or a "
        "Django view (both take the request), a Flask view (called in a request context) "
        "or a WSGI app (environ, start_response); in FastAPI use Depends(require_scopes(...))."
    )


# ---------------------------------------------------------------- WSGI


def answer_wsgi(rejection: Rejection, realm: str, start_response: StartResponse) -> list[bytes]:
    """Send ``rejection`` the plain WSGI way; returns the response body iterable."""
    body = rejection.body()
    headers = [*rejection.headers(realm), ("Content-Length", str(len(body)))]
    start_response(f"{rejection.status} {HTTPStatus(rejection.status).phrase}", headers)
    return [body]


def answer_wsgi_document(answer: DocumentAnswer, start_response: StartResponse) -> list[bytes]:
    """``send_asgi_document`` for WSGI; returns the body iterable."""
    start_response(f"{answer.status} {HTTPStatus(answer.status).phrase}", list(answer.headers))
    return [answer.body] if answer.body else []


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
