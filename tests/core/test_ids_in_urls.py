"""Ids in URLs (`<id:…>`, core/converters.py): a UUID in either case reaches the object, as the
lower-case form does; anything else matches no route, so the API answers 404 problem+json (before
credentials, for every method and caller) and a page answers Django's 404. Text that cannot be
text (NUL) is refused as such before any route is read, as everywhere (422)."""

import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client as WebClient
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clientdesk.accounts.services import api_token_create
from clientdesk.core.converters import IdConverter
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
ID = re.compile(r"<id:([a-z_]+)>")
SAMPLE = "0f8fad5b-d9cb-469f-a165-70867728950e"
MALFORMED = [
    "not-a-uuid",
    "1",
    "-1",
    "9" * 40,
    SAMPLE.replace("-", ""),  # 32 hex digits: a UUID, but not as the API writes one
    "{" + SAMPLE + "}",
    "urn:uuid:" + SAMPLE,
    SAMPLE + "0",
    SAMPLE[:-1],
    SAMPLE.replace("a", "g"),
    " " + SAMPLE,
    "%ED%A0%80",  # a lone surrogate in UTF-8, which is no UTF-8
    "%FF",
    "%27%20OR%20%271%27%3D%271",
    "%F0%9F%98%80",
    "%C3%A9" * 36,
]


def _routes(prefixes: tuple[str, ...]) -> Iterator[str]:
    def walk(patterns: Any, prefix: str) -> Iterator[str]:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern):
                yield prefix + str(entry.pattern)

    for route in walk(get_resolver().url_patterns, "/"):
        if ID.search(route) and route.startswith(prefixes):
            yield route


API_ROUTES = ("/api/", "/portal/api/")


def test_a_nul_where_the_id_goes_is_refused_as_text(world):
    response = _api_get(world, "/api/v1/clients/%00")
    _problem(response, 422, "validation-failed", "NUL")


@pytest.fixture
def world(make_user, make_client, api_for) -> dict[str, Any]:
    admin = make_user("Administrator")
    client = make_client()
    version = template_create(author=admin, name="Welcome", body="Hello", language="en")
    sent = message_send(
        sender=admin, client_id=client.id, idempotency_key="k1", meta=RequestMeta(), body="Hi"
    )
    _, staff_token = api_token_create(user=admin)
    issued = api_for(make_user("Integration")).post(
        "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
    )
    return {
        "admin": admin,
        "ids": {
            "client_id": client.id,
            "message_id": sent.message_id,
            "template_id": version.template_id,
        },
        "staff_token": staff_token,
        "portal_token": issued.json()["token"],
    }


def _callers(world: dict[str, Any]) -> dict[str, WebClient]:
    def web(*, session: bool, token: str | None) -> WebClient:
        caller = WebClient(enforce_csrf_checks=True)
        if session:
            caller.force_login(world["admin"])
        if token:
            caller.defaults["HTTP_AUTHORIZATION"] = f"Bearer {token}"
        return caller

    return {
        "anonymous": web(session=False, token=None),
        "staff token": web(session=False, token=world["staff_token"]),
        "portal token": web(session=False, token=world["portal_token"]),
        "session cookie": web(session=True, token=None),
    }


def _problem(response: Any, status: int, slug: str, context: str) -> None:
    assert response.status_code == status, (context, response.status_code, response.content[:200])
    assert response["Content-Type"] == PROBLEM, context
    if response.request["REQUEST_METHOD"] != "HEAD":
        assert response.json()["type"].endswith(f"/{slug}"), context


def test_every_api_route_with_an_id_is_walked():
    routes = list(_routes(API_ROUTES))
    assert "/api/v1/clients/<id:client_id>" in routes
    assert "/portal/api/v1/messages/<id:message_id>/read" in routes
    assert len(routes) >= 7


def test_a_malformed_id_is_404_problem_for_every_method_and_caller(world):
    callers = _callers(world)
    for route in _routes(API_ROUTES):
        for bad in MALFORMED:
            path = ID.sub(bad, route)
            for way, caller in callers.items():
                for method in ("GET", "HEAD", "POST", "PATCH", "DELETE"):
                    response = caller.generic(
                        method, path, b'{"body": "x"}', content_type="application/json"
                    )
                    _problem(response, 404, "not-found", f"{method} {path} as {way}")


def test_a_malformed_id_in_a_page_is_the_page_404(world):
    session = _callers(world)["session cookie"]
    for route in _routes(("/clients/", "/templates/", "/deliveries/")):
        for bad in MALFORMED[:4]:
            response = session.get(ID.sub(bad, route))
            assert response.status_code == 404, route
            assert response["Content-Type"].startswith("text/html"), route


def _api_get(world: dict[str, Any], path: str) -> Any:
    return WebClient().get(path, HTTP_AUTHORIZATION=f"Bearer {world['staff_token']}")


@pytest.mark.parametrize("route", ["/api/v1/clients/{client_id}", "/api/v1/messages/{message_id}"])
def test_an_upper_case_id_reaches_the_same_object(world, route):
    lower = _api_get(world, route.format(**world["ids"]))
    upper = _api_get(world, route.format(**{k: str(v).upper() for k, v in world["ids"].items()}))
    assert lower.status_code == upper.status_code == 200
    assert upper.json() == lower.json()


def test_a_page_reads_an_upper_case_id_and_links_lower_case(world):
    session = _callers(world)["session cookie"]
    client_id = world["ids"]["client_id"]
    assert session.get(f"/clients/{str(client_id).upper()}/").status_code == 200
    assert reverse("clients:detail", kwargs={"client_id": client_id}) == f"/clients/{client_id}/"


def test_the_view_receives_a_uuid():
    assert IdConverter().to_python(SAMPLE.upper()) == uuid.UUID(SAMPLE)
    assert IdConverter().to_url(uuid.UUID(SAMPLE)) == SAMPLE


def test_the_openapi_document_says_each_id_is_a_uuid(api_for, make_user):
    document = api_for(make_user("Viewer")).get("/api/schema/?format=json").json()
    parameters = [
        parameter
        for operations in document["paths"].values()
        for operation in operations.values()
        if isinstance(operation, dict)
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "path" and parameter["name"].endswith("_id")
    ]
    assert parameters
    assert all(p["schema"] == {"type": "string", "format": "uuid"} for p in parameters)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    segment=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60).filter(
        lambda s: s not in {".", ".."}
    )
)
def test_any_text_as_the_id_is_the_object_or_404_problem(world, segment):
    """Whatever text stands where the id goes: a UUID (in any case) answers as the client, and
    anything else is 404 problem+json (422 for a NUL, which no text may hold), never a 5xx or
    another shape."""
    path = f"/api/v1/clients/{quote(segment, safe='')}"
    response = _api_get(world, path)
    try:
        is_id = uuid.UUID(segment) == world["ids"]["client_id"] and bool(
            re.fullmatch(IdConverter.regex, segment)
        )
    except ValueError:
        is_id = False
    if "\x00" in segment:
        _problem(response, 422, "validation-failed", repr(segment))
    elif is_id:
        assert response.status_code == 200
    else:
        _problem(response, 404, "not-found", repr(segment))
