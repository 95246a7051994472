"""``require_scopes`` on a Starlette WebSocket endpoint, over a real uvicorn server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from genauth_guard import GenAuthGuard, Introspector, require_scopes
from genauth_guard.dev.testing import serve_in_thread

from .conftest import RunningAuthServer

endpoint_calls: list[str] = []


@require_scopes("chat:read")
async def chat(websocket: WebSocket) -> None:
    endpoint_calls.append("chat")
    await websocket.accept()
    await websocket.send_text("welcome " + websocket.user.identity)
    await websocket.close()


@pytest.fixture(scope="module")
def ws_url(auth_server: RunningAuthServer) -> Iterator[str]:
    introspector = Introspector(
        auth_server.endpoint(), client_id="post-client", client_secret="post-secret"
    )
    app = Starlette(routes=[WebSocketRoute("/chat", chat)])
    with serve_in_thread(GenAuthGuard(app, introspector=introspector)) as url:
        yield url.replace("http://", "ws://") + "/chat"


def test_a_websocket_with_the_scope_is_served(auth_server: RunningAuthServer, ws_url: str) -> None:
    token = auth_server.server.mint("erin", "chat:read")
    with connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert ws.recv() == "welcome erin"


def test_a_websocket_without_the_scope_is_closed_as_a_policy_violation(
    auth_server: RunningAuthServer, ws_url: str
) -> None:
    """Closed before accept (1008): uvicorn turns that into a 403 handshake, never a 500."""
    token = auth_server.server.mint("erin", "chat:write")
    endpoint_calls.clear()
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url, additional_headers={"Authorization": f"Bearer {token}"})
    assert caught.value.response.status_code == 403
    assert endpoint_calls == []
