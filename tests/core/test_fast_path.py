"""A staff API request with a bearer token skips the signed-in pages' middleware
(core/fast_path.py); every other request takes the full chain."""

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client as DjangoClient

from clientdesk.accounts.services import api_token_create
from clientdesk.core.fast_path import SKIPPED, ApiTokenFastPath, _path

pytestmark = pytest.mark.django_db


def _next(target: Any) -> Any:
    """What a middleware calls next: its `get_response`, or a function middleware's closure."""
    if hasattr(target, "get_response"):
        return target.get_response
    return next(c.cell_contents for c in target.__closure__ if callable(c.cell_contents))


def _fast_path(handler: Any) -> ApiTokenFastPath:
    step = handler._middleware_chain
    while True:
        target = getattr(step, "__wrapped__", step)
        if isinstance(target, ApiTokenFastPath):
            return target
        step = _next(target)


def _classes(chain: Any) -> list[str]:
    found = []
    step = chain
    while True:
        target = getattr(step, "__wrapped__", step)
        if not hasattr(target, "get_response"):
            return found
        found.append(_path(type(target)))
        step = target.get_response


def test_the_lean_chain_is_the_full_one_less_the_skipped_middleware(settings):
    fast = _fast_path(WSGIHandler())
    assert fast.lean is not None
    full = _classes(fast.get_response)
    lean = _classes(fast.lean)
    assert lean == [name for name in full if name not in SKIPPED]
    assert set(full) >= SKIPPED  # each skipped one is there to skip
    after = settings.MIDDLEWARE[settings.MIDDLEWARE.index(_path(ApiTokenFastPath)) + 1 :]
    assert full == after
    assert "django.contrib.auth.middleware.AuthenticationMiddleware" in lean
    assert "clientdesk.core.middleware.TextValidityMiddleware" in lean


def test_under_asgi_every_request_takes_the_full_chain():
    assert _fast_path(ASGIHandler()).lean is None


def _seen_by_skipped_middleware(response: Any) -> bool:
    """MessageMiddleware and HtmxMiddleware leave their marks on the request."""
    request = response.wsgi_request
    return hasattr(request, "_messages") or hasattr(request, "htmx")


def test_a_bearer_request_to_the_staff_api_skips_them_and_keeps_the_rest(agent, client_obj):
    _, token = api_token_create(user=agent)
    http = DjangoClient()
    response = http.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Your statement is ready"},
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_IDEMPOTENCY_KEY="fast-path-1",
    )
    assert response.status_code == 201
    assert not _seen_by_skipped_middleware(response)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Request-ID"]
    assert "Content-Security-Policy" in response
    # Refusals are as before: problem+json.
    refused = http.get("/api/v1/clients", HTTP_AUTHORIZATION="Bearer cd_unknown")
    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    nul = http.get("/api/v1/clients?search=a%00b", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert nul.status_code == 422
    wrong = http.delete("/api/v1/clients", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert wrong.status_code == 405 and "Allow" in wrong


@pytest.mark.parametrize(
    "path,header",
    [
        ("/api/v1/clients", ""),  # no token: the session's request
        ("/api/v1/clients", "Basic YTpi"),  # another scheme
        ("/api/v1/clients", "Bearer "),  # no token in it
        ("/portal/api/v1/messages", "Bearer cd_portal"),  # the portal's API
        ("/login/", "Bearer cd_page"),  # a page
    ],
)
def test_every_other_request_takes_the_full_chain(db, path, header):
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    response = DjangoClient().get(path, **extra)
    assert _seen_by_skipped_middleware(response)
