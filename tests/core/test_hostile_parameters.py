"""Every query parameter of every API endpoint, every filter of the staff pages and the instants
and numbers of JSON bodies, fed what an attacker sends: extreme dates, huge or foreign numbers,
nested brackets, NUL, lone surrogates, very long text, and whatever hypothesis makes up. Never a
5xx: the API answers problem+json naming the parameter, a page a readable error.

The parameters come from the views' own `query_parameters` (core/api.py), so a parameter added
later is fuzzed without touching this file. Runs on SQLite and, with DATABASE_URL, PostgreSQL."""

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clientdesk.audit.services import audit_sequence
from clientdesk.core.api import ApiView, query_names
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send
from clientdesk.messaging.services.templates import template_create
from clientdesk.outreach.services import broadcast_create, broadcast_request_parse
from tests.routes import site_routes

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"
_FIXTURES_OK = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]

HOSTILE = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+01:00",
    "+275760-09-13",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "[" * 5000,
    "W1tb" * 1000,  # base64 of "[[[": a cursor that is nested brackets
    "\x00",
    "\ud800",
    "%ED%A0%80",
    "9" * 5000,
    "-" + "9" * 25,
    str(2**63),
    "-1",
    "0",
    "١٢",
    "１２",
    "1e309",
    "NaN",
    "true",
    "",
    " ",
    "a" * 20_000,
    "é" * 3000,
]
# Text as it travels: UTF-8 percent-encoded, lone surrogates as the three bytes a careless
# encoder produces (%ED%A0%80), which are not UTF-8.
_values = st.one_of(
    st.sampled_from(HOSTILE),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.text(alphabet=st.sampled_from("0123456789-+:TZ.[]{}\"'|=%"), max_size=40),
    st.integers().map(str),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
)


def _quoted(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _api_views() -> Iterator[tuple[str, type[ApiView]]]:
    for route, callback in site_routes():
        view_class = getattr(callback, "view_class", None)
        if view_class is not None and issubclass(view_class, ApiView):
            yield route, view_class


def _query_parameters() -> list[tuple[str, str]]:
    found = []
    for route, view_class in _api_views():
        declaration = view_class.query_parameters.get("GET")
        if declaration is None:
            continue
        names = query_names(declaration)
        found += [(route, name) for name in sorted(names)]
    return found


QUERY_PARAMETERS = _query_parameters()
# Parameters an endpoint needs, so that the one under test is what gets judged.
REQUIRED = {"export": {"format": "csv"}, "consistency": {"first": "1"}}


@pytest.fixture
def world(make_user, make_client, api_for):
    """Real objects behind every path parameter, and a staff and a portal token."""
    admin = make_user("Administrator")
    client = make_client()
    version = template_create(author=admin, name="Welcome", body="Hello", language="en")
    sent = message_send(
        sender=admin, client_id=client.id, idempotency_key="k1", meta=RequestMeta(), body="Hi"
    )
    broadcast, _ = broadcast_create(
        actor=admin,
        request=broadcast_request_parse(
            {"audience": {"client_ids": [str(client.id)]}, "body": "Hi", "category": "service"}
        ),
        idempotency_key="b1",
        meta=RequestMeta(),
    )
    audit_sequence()
    staff = api_for(admin)
    issued = api_for(make_user("Integration")).post(
        "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
    )
    portal = APIClient()
    portal.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.json()['token']}")
    ids = {
        "client_id": str(client.id),
        "message_id": str(sent.message_id),
        "template_id": str(version.template_id),
        "sequence": "1",
        "broadcast_id": str(broadcast.id),
    }
    return {"staff": staff, "portal": portal, "ids": ids, "admin": admin, "client": client}


def _path(route: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        for converter in ("id", "int"):
            route = route.replace(f"<{converter}:{name}>", value)
    assert "<" not in route, route
    return route


def _body(response: Any) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def _check_api(world: dict[str, Any], route: str, name: str, value: str) -> None:
    api = world["portal"] if route.startswith("/portal/") else world["staff"]
    url = f"{_path(route, world['ids'])}?{name}={_quoted(value)}"
    for other, needed in REQUIRED.get(route.rsplit("/", 1)[-1], {}).items():
        if other != name:
            url += f"&{other}={needed}"
    response = api.get(url)
    body = _body(response)
    assert response.status_code < 500, (url[:200], response.status_code, body[:300])
    if response.status_code >= 400:
        assert response["Content-Type"] == PROBLEM, (url[:200], body[:300])
        problem = json.loads(body)
        if response.status_code == 422:
            # Names what is wrong: this parameter, or the one a valid value conflicts with
            # (first=5 on a ledger of 3 records is a proof `second` cannot give).
            assert problem["errors"], problem


def test_every_declared_query_parameter_is_fuzzed():
    """The list is not empty by accident: the parameters named in the issue are in it."""
    names = {(route.rsplit("/", 1)[-1], name) for route, name in QUERY_PARAMETERS}
    for expected in [
        ("export", "since"),
        ("export", "until"),
        ("messages", "cursor"),
        ("messages", "before"),
        ("messages", "limit"),
        ("records", "after"),
        ("proof", "tree_size"),
        ("consistency", "first"),
        ("consistency", "second"),
        ("clients", "external_id"),
        ("activity", "page_size"),
    ]:
        assert expected in names, expected


@pytest.mark.parametrize(("route", "name"), QUERY_PARAMETERS)
def test_hostile_values_of_each_query_parameter_are_a_problem_never_a_crash(world, route, name):
    for value in HOSTILE:
        _check_api(world, route, name, value)


@pytest.mark.parametrize(("route", "name"), QUERY_PARAMETERS)
def test_generated_values_of_each_query_parameter_never_crash(world, route, name):
    @given(value=_values)
    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=_FIXTURES_OK)
    def check(value):
        _check_api(world, route, name, value)

    check()


PAGE_FILTERS = {
    "/clients/": ["q", "page"],
    "/messages/": ["view", "q", "direction", "sender", "since", "until", "cursor"],
    "/audit/": ["action", "actor", "object", "since", "until", "page"],
    "/templates/": ["q", "page"],
    "/templates/preview-clients/": ["q"],
    "/clients/<client_id>/activity/": ["page"],
    "/templates/<template_id>/": ["language"],
}


def _check_page(web: Any, world: dict[str, Any], page: str, name: str, value: str) -> None:
    path = page.replace("<client_id>", world["ids"]["client_id"]).replace(
        "<template_id>", world["ids"]["template_id"]
    )
    for htmx in ({}, {"HTTP_HX_REQUEST": "true"}):
        response = web.get(f"{path}?{name}={_quoted(value)}", **htmx)
        assert response.status_code < 500, (path, name, value[:80], response.status_code)
        if response.status_code >= 400:
            text = response.content.decode()
            assert name in text or "must" in text, (path, name, text[:300])


@pytest.mark.parametrize(
    ("page", "name"), [(page, name) for page, names in PAGE_FILTERS.items() for name in names]
)
def test_page_filters_answer_hostile_values_with_a_readable_error(client, world, page, name):
    client.force_login(world["admin"])
    for value in HOSTILE:
        _check_page(client, world, page, name, value)

    @given(value=_values)
    @settings(max_examples=20, deadline=None, database=None, suppress_health_check=_FIXTURES_OK)
    def check(value):
        _check_page(client, world, page, name, value)

    check()


_instants = st.one_of(
    st.sampled_from(HOSTILE),
    st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    st.integers(),
    st.floats(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
)


def test_reply_due_at_in_a_send_is_checked_never_a_crash(world):
    url = f"/api/v1/clients/{world['ids']['client_id']}/messages"
    keys = iter(range(1_000_000))

    @given(due=_instants)
    @settings(max_examples=120, deadline=None, database=None, suppress_health_check=_FIXTURES_OK)
    def check(due):
        payload = json.dumps({"body": "Hi", "expects_reply": True, "reply_due_at": due})
        response = world["staff"].post(
            url,
            payload,
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY=f"due-{next(keys)}",
        )
        assert response.status_code in (201, 400, 422), (due, response.content[:300])
        if response.status_code != 201:
            assert response["Content-Type"] == PROBLEM

    check()


@pytest.mark.parametrize(
    "number",
    ["1e400", "-1e400", "NaN", "Infinity", str(10**30), str(-(10**300)), "9" * 5000, "1e308"],
)
def test_numbers_in_attributes_are_stored_safely_or_refused(world, number):
    """A number in a JSON body reaches the database and comes back out as JSON."""
    api = world["staff"]
    body = '{"external_id": "N-1", "first_name": "Nu", "attributes": {"n": ' + number + "}}"
    created = api.post("/api/v1/clients", body, content_type="application/json")
    assert created.status_code in (201, 400, 422), created.content[:300]
    if created.status_code != 201:
        assert created["Content-Type"] == PROBLEM
        return
    client_id = created.json()["id"]
    assert api.get(f"/api/v1/clients/{client_id}").status_code == 200
    assert api.get("/api/v1/clients?external_id=N-1").json()["results"][0]["id"] == client_id
    sent = api.post(
        f"/api/v1/clients/{client_id}/messages",
        {"body": "Hi {{ n }}"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="n-1",
    )
    assert sent.status_code in (201, 422), sent.content[:300]
    export = api.get("/api/v1/messages/export?format=ndjson")
    assert export.status_code == 200
    assert _body(export)


@pytest.mark.parametrize("length", ["١٢", "-5", "9" * 5000, "1e3", str(2**63)])
def test_a_content_length_that_is_not_a_length_is_a_400_problem(world, length):
    response = world["staff"].generic(
        "POST", "/api/v1/clients", b"{}", content_type="application/json", CONTENT_LENGTH=length
    )
    assert response.status_code == 400, response.content[:200]
    assert response["Content-Type"] == PROBLEM
    assert "Content-Length" in response.json()["detail"]


def test_rows_stored_at_the_ends_of_time_still_page_and_export(world, make_client):
    """Instants written around the boundary's checks (by hand, or before them) still page: the
    cursor of such a row is written and read in UTC, and everything leaves in UTC."""
    from datetime import UTC, datetime

    from clientdesk.followup.models import Conversation
    from clientdesk.messaging.models import Message

    api, portal = world["staff"], world["portal"]
    for n, when in enumerate(
        [datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)]
    ):
        sent = message_send(
            sender=world["admin"],
            client_id=world["client"].id,
            idempotency_key=f"end-{n}",
            meta=RequestMeta(),
            body=f"At the end {n}",
        )
        Message.objects.filter(pk=sent.message_id).update(created_at=when, reply_due_at=when)
    Conversation.objects.update(last_message_at=datetime(9999, 12, 31, tzinfo=UTC))
    seen, url = [], "/api/v1/messages?limit=1"
    while url:
        page = api.get(url)
        assert page.status_code == 200, page.content[:300]
        seen += [m["id"] for m in page.json()["results"]]
        url = page.json()["next"]
    assert len(seen) == len(set(seen)) == Message.objects.count() == 3
    inbox, before = [], None
    while True:
        query = "limit=1" + (f"&before={before}" if before else "")
        listing = portal.get(f"/portal/api/v1/messages?{query}")
        assert listing.status_code == 200, listing.content[:300]
        inbox += [m["id"] for m in listing.json()["items"]]
        if not (before := listing.json()["next"]):
            break
    assert sorted(inbox) == sorted(seen)
    # The export holds what was created before it began: the row of year 9999 is not in it yet.
    export = api.get("/api/v1/messages/export?format=ndjson&since=0002-01-01")
    assert [json.loads(line)["body"] for line in _body(export).decode().splitlines()] == ["Hi"]
    everything = api.get("/api/v1/messages/export?format=csv")
    assert b"0001-01-01T00:00:00Z" in _body(everything)
