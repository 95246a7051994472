"""Views of the example Django project: the guard has already checked the token."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET

from genauth_guard import get_token_info, require_scopes

ORDERS = [
    {"id": 1, "item": "keyboard", "owner": "alice"},
    {"id": 2, "item": "monitor", "owner": "bob"},
]


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@require_GET
def me(request: HttpRequest) -> JsonResponse:
    info = get_token_info(request)
    assert info is not None  # the guard let the request in
    return JsonResponse(
        {
            # The user the token speaks for (its sub, else its username). A client
            # acting for itself has none: REMOTE_USER is unset, client_id names it.
            "identity": request.META.get("REMOTE_USER"),
            "scopes": sorted(info.scopes),
            "client_id": info.client_id,
            "expires_at": info.exp,
        }
    )


@require_GET
@require_scopes("orders:read")  # 403 insufficient_scope, as the guard would answer
def orders(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"orders": ORDERS})
