"""Under /api/ and /portal/api/ an unknown path is 404 and a method a route does not answer is 405
with Allow, problem+json, whatever the method and whoever asks (no credentials, a staff token, a
portal token, a session cookie without a CSRF token, or several of them): a request is never
answered "CSRF check failed" for a route that cannot change anything. CSRF still guards every
session-cookie write to a real endpoint, and a bearer token is never judged by CSRF."""

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client as WebClient

from clientdesk.accounts.services import api_token_create
from clientdesk.clients.models import Client
from clientdesk.core.api import allowed_methods
from tests.routes import site_routes

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "FOO"]
UNKNOWN = [
    "/api/v1/nothing-here",
    "/api/v2/clients",
    "/api/v1/clients/x/y/z",
    "/api/v1/audit/records/abc/proof",
    "/api/v1/clients/",  # the real one has no slash
    "/api/",
    "/portal/api/",
    "/portal/api/v1/nothing-here",
    "/portal/api/v2/messages",
    "/portal/api/v1/messages/x/y/read",
]
STREAMS = ["/api/v1/events", "/portal/api/v1/events"]


@pytest.fixture
def callers(make_user, make_client, api_for) -> dict[str, Any]:
    """Every way to call: nothing, a staff token, a portal token, a session cookie (CSRF
    enforced, no token), and a session cookie with each kind of token."""
    admin = make_user("Administrator")
    client = make_client()
    _, staff_token = api_token_create(user=admin)
    issued = api_for(make_user("Integration")).post(
        "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
    )
    portal_token = issued.json()["token"]

    def web(*, session: bool, token: str | None) -> WebClient:
        caller = WebClient(enforce_csrf_checks=True)
        if session:
            caller.force_login(admin)
        if token:
            caller.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return caller

    return {
        "ways": {
            "anonymous": web(session=False, token=None),
            "staff token": web(session=False, token=staff_token),
            "portal token": web(session=False, token=portal_token),
            "session cookie": web(session=True, token=None),
            "session + staff token": web(session=True, token=staff_token),
            "session + portal token": web(session=True, token=portal_token),
        },
        "admin": admin,
        "client": client,
        "staff_token": staff_token,
        "portal_token": portal_token,
    }


def _call(caller: WebClient, method: str, path: str) -> Any:
    return caller.generic(method, path, b'{"body": "x"}', content_type="application/json")


def _problem(response: Any, status: int, context: str) -> dict[str, Any]:
    assert response.status_code == status, (context, response.status_code, response.content[:200])
    assert response["Content-Type"] == PROBLEM, context
    if response.request["REQUEST_METHOD"] == "HEAD":
        return {}

    body = json.loads(response.content)
    assert "CSRF" not in body["detail"], context
    return body


def test_unknown_api_paths_are_404_for_every_method_and_caller(callers):
    for way, caller in callers["ways"].items():
        for path in UNKNOWN:
            for method in METHODS:
                _problem(_call(caller, method, path), 404, f"{method} {path} as {way}")


def test_the_event_streams_answer_405_to_every_other_method(callers):
    for way, caller in callers["ways"].items():
        for path in STREAMS:
            for method in METHODS:
                if method == "GET":
                    continue
                response = _call(caller, method, path)
                _problem(response, 405, f"{method} {path} as {way}")
                assert response["Allow"] == "GET"


def _api_routes() -> Iterator[tuple[str, type]]:
    for route, callback in site_routes():
        view_class = getattr(callback, "view_class", None)
        if route.startswith(("/api/", "/portal/api/")) and view_class is not None:
            yield route, view_class


def test_every_route_answers_405_with_allow_to_methods_it_lacks_for_every_caller(callers):
    routes = list(_api_routes())
    assert len(routes) >= 20
    for route, view_class in routes:
        path = re.sub(
            "<id:[a-z_]+>", str(callers["client"].id), route.replace("<int:sequence>", "1")
        )
        allowed = allowed_methods(view_class)
        for way, caller in callers["ways"].items():
            for method in METHODS:
                if method in allowed:
                    continue
                response = _call(caller, method, path)
                _problem(response, 405, f"{method} {path} as {way}")
                assert response["Allow"] == ", ".join(allowed), path


def test_allow_names_what_each_route_answers():
    allowed = {route: allowed_methods(view) for route, view in _api_routes()}
    assert allowed["/api/v1/clients"] == ["GET", "HEAD", "OPTIONS", "POST"]
    assert allowed["/api/v1/clients/<id:client_id>"] == ["GET", "HEAD", "OPTIONS", "PATCH"]
    assert allowed["/api/v1/portal/sessions"] == ["OPTIONS", "POST"]
    assert allowed["/portal/api/v1/messages/<id:message_id>/read"] == ["OPTIONS", "POST"]


def _csrf_ready(caller: WebClient) -> str:
    """A signed-in browser's CSRF token, as a page hands it over (cookie and form)."""
    assert caller.get("/clients/").status_code == 200
    return caller.cookies["csrftoken"].value


def _new_client(n: int) -> dict[str, str]:
    return {"external_id": f"CSRF-{n}", "first_name": "Cora"}


def test_a_session_cookie_write_without_the_csrf_token_is_still_refused(callers):
    caller = callers["ways"]["session cookie"]
    target = callers["client"]
    writes = [
        ("POST", "/api/v1/clients", _new_client(1)),
        ("PATCH", f"/api/v1/clients/{target.id}", {"first_name": "Changed"}),
        ("POST", f"/api/v1/clients/{target.id}/messages", {"body": "Hi"}),
        ("PUT", "/api/v1/integration/outgoing-endpoint", {"url": "https://example.com"}),
        ("POST", "/api/v1/portal/sessions", {"client_id": str(target.id)}),
    ]

    for method, path, body in writes:
        response = caller.generic(
            method,
            path,
            json.dumps(body),
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="csrf-1",
        )
        assert response.status_code == 403, (method, path, response.content[:200])
        assert response["Content-Type"] == PROBLEM
        assert "CSRF" in response.json()["detail"]
    assert not Client.objects.filter(external_id="CSRF-1").exists()
    assert Client.objects.get(pk=target.pk).first_name != "Changed"
    # A page form too: Django's own check, unchanged.
    page = caller.post(f"/clients/{target.id}/messages/", {"body": "Hi", "idempotency_key": "p1"})
    assert page.status_code == 403


def test_a_session_cookie_write_with_the_csrf_token_goes_through(callers):
    caller = callers["ways"]["session cookie"]
    token = _csrf_ready(caller)
    response = caller.post(
        "/api/v1/clients", _new_client(2), content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201, response.content[:200]


def test_a_bearer_token_is_never_judged_by_csrf(callers):
    staff = callers["ways"]["session + staff token"]
    response = staff.post("/api/v1/clients", _new_client(3), content_type="application/json")
    assert response.status_code == 201, response.content[:200]
    portal = callers["ways"]["session + portal token"]
    reply = portal.post(
        "/portal/api/v1/messages",
        {"body": "Thanks"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="r1",
    )
    assert reply.status_code == 201, reply.content[:200]
    # A token that is not valid here is refused as a credential, not as a missing CSRF token.
    wrong = callers["ways"]["session + portal token"].post(
        "/api/v1/clients", _new_client(4), content_type="application/json"
    )
    assert wrong.status_code == 401
    assert "CSRF" not in wrong.json()["detail"]


def test_the_anonymous_get_401_from_real_routes_and_404_from_unknown_ones(callers):
    anonymous = callers["ways"]["anonymous"]
    _problem(anonymous.get("/api/v1/clients"), 401, "GET /api/v1/clients")
    _problem(anonymous.post("/api/v1/clients", {}), 401, "POST /api/v1/clients")
    _problem(anonymous.get("/portal/api/v1/messages"), 401, "GET /portal/api/v1/messages")
    not_found = _problem(anonymous.post("/api/v1/nothing-here"), 404, "POST unknown")
    assert "/api/v1/nothing-here" in not_found["detail"]
    not_found = _problem(anonymous.put("/portal/api/v1/nothing"), 404, "PUT unknown portal")
    assert "/portal/api/v1/nothing" in not_found["detail"]
