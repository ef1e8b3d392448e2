"""Every API view declares the query parameters it takes (`query_parameters`, next to
`required_permissions`); any other is a 422 naming each one, after credentials and permission
are checked. The declarations and the OpenAPI document agree."""

from collections.abc import Iterator
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from clientdesk.core.api import ApiView, query_names

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


def _routes() -> Iterator[tuple[str, Any]]:
    def walk(patterns: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                if str(entry.pattern) != "admin/":
                    yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern), entry.callback

    yield from walk(get_resolver().url_patterns, "/")


def test_every_api_view_derives_from_the_base_that_checks_its_query():
    """The schema and its UI are drf-spectacular's own views, and the rest are function views
    that check their own query (the event streams) or answer 404 whatever it says."""
    others = []
    for route, callback in _routes():
        view_class = getattr(callback, "view_class", None)
        api = route.startswith(("/api/", "/portal/api/")) and view_class is not None
        if api and not issubclass(view_class, ApiView):
            others.append(route)
    assert sorted(others) == ["/api/docs/", "/api/schema/"]


def test_the_openapi_document_lists_exactly_the_declared_query_parameters(client):
    schema = client.get("/api/schema/?format=json").json()
    views = {
        route: callback.view_class
        for route, callback in _routes()
        if issubclass(getattr(callback, "view_class", type), ApiView)
    }
    checked = 0
    for path, operations in schema["paths"].items():
        route = next(r for r in views if _same(r, path))
        for method, operation in operations.items():
            documented = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
            declared = views[route].query_parameters.get(method.upper(), ())
            assert documented == query_names(declared), (method, path)
            checked += 1
    assert checked >= 25


def _same(route: str, path: str) -> bool:
    route_parts, path_parts = route.strip("/").split("/"), path.strip("/").split("/")
    return len(route_parts) == len(path_parts) and all(
        r == p or (r.startswith("<") and p.startswith("{"))
        for r, p in zip(route_parts, path_parts, strict=True)
    )


@pytest.fixture
def staff(make_user, api_for) -> APIClient:
    return api_for(make_user("Administrator"))


@pytest.mark.parametrize(
    ("path", "query", "unknown"),
    [
        ("/api/v1/clients", "serach=Zo&page=1", ["serach"]),
        ("/api/v1/clients", "externalId=CRM-1", ["externalId"]),
        ("/api/v1/clients", "format=json", ["format"]),
        ("/api/v1/messages", "since=2026-01-01&sort=asc&_=1733580000", ["_", "sort"]),
        ("/api/v1/messages/export", "format=csv&from=2026-01-01", ["from"]),
        ("/api/v1/audit/records", "after=0&offset=5", ["offset"]),
        ("/api/v1/templates", "q=hello", ["q"]),
        ("/api/v1/settings/follow-up", "x=1", ["x"]),
        ("/api/v1/integration/outgoing-endpoint", "secret=1", ["secret"]),
        ("/api/v1/audit/checkpoint", "tree_size=1", ["tree_size"]),
    ],
)
def test_an_unknown_query_parameter_is_a_422_naming_it(staff, path, query, unknown):
    response = staff.get(f"{path}?{query}")
    assert response.status_code == 422, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    problem = response.json()
    assert problem["unknown_parameters"] == unknown
    assert sorted(problem["errors"]) == unknown
    for name in unknown:
        assert name in problem["detail"]


def test_unknown_parameters_on_writes_and_the_portal_are_refused_too(
    staff, make_client, make_user, api_for
):
    client = make_client()
    created = staff.post("/api/v1/clients?dry_run=1", {"external_id": "Q-1", "first_name": "Q"})
    assert created.status_code == 422
    assert created.json()["unknown_parameters"] == ["dry_run"]
    changed = staff.patch(f"/api/v1/clients/{client.id}?force=1", {"first_name": "R"})
    assert changed.status_code == 422
    issued = api_for(make_user("Integration")).post(
        "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
    )
    portal = APIClient()
    portal.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.json()['token']}")
    assert portal.get("/portal/api/v1/messages?limit=5&before=").status_code in (200, 422)
    inbox = portal.get("/portal/api/v1/messages?limit=5&page=2")
    assert inbox.status_code == 422
    assert inbox.json()["unknown_parameters"] == ["page"]
    # What the reference cabinet sends is what the portal API takes.
    assert portal.get("/portal/api/v1/messages?limit=20").status_code == 200


def test_credentials_and_permission_are_judged_before_the_query(make_user, api_for):
    anonymous = APIClient()
    assert anonymous.get("/api/v1/clients?nonsense=1").status_code == 401
    assert anonymous.get("/portal/api/v1/messages?nonsense=1").status_code == 401
    viewer = api_for(make_user("Viewer"))
    assert viewer.get("/api/v1/audit/records?nonsense=1").status_code == 403


def test_a_declared_parameter_given_twice_or_empty_is_judged_by_its_value(staff):
    assert staff.get("/api/v1/clients?page=1&page=2").status_code == 200
    assert staff.get("/api/v1/clients?search=").status_code == 200
    empty = staff.get("/api/v1/clients?external_id=")
    assert empty.status_code == 422
    assert "external_id" in empty.json()["errors"]
