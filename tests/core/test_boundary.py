"""Text at the boundary and errors before DRF: what an attacker sends is refused with a
problem naming the field, nothing is half-stored, and every API error is problem+json."""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from clientdesk.clients.models import Client
from clientdesk.messaging.models import Message, MessageTemplate

pytestmark = pytest.mark.django_db
_FIXTURES_OK = [HealthCheck.function_scoped_fixture]
PROBLEM = "application/problem+json"
BAD = ["\ud800", "\udfff", "a\x00b", "\x00"]


def _problem(response, status):
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == PROBLEM
    return response.json()


def _raw(api, method, url, payload, **extra):
    """Send JSON text as written (json.dumps escapes a lone surrogate as \\ud800)."""
    return getattr(api, method)(url, json.dumps(payload), content_type="application/json", **extra)


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize(
    "field", ["external_id", "first_name", "last_name", "email", "phone", "attributes.note"]
)
def test_client_create_refuses_invalid_text_in_every_field(agent, api_for, bad, field):
    payload = {"external_id": "EXT-1", "first_name": "Zoë", "attributes": {}}
    if field.startswith("attributes."):
        payload["attributes"]["note"] = f"x{bad}y"
    else:
        payload[field] = f"x{bad}y"
    problem = _problem(_raw(api_for(agent), "post", "/api/v1/clients", payload), 422)
    assert field in problem["errors"]
    assert not Client.objects.exists()


def test_invalid_attribute_names_are_refused_too(agent, api_for):
    payload = {"external_id": "EXT-1", "first_name": "Zoë", "attributes": {"\ud800": "x"}}
    problem = _problem(_raw(api_for(agent), "post", "/api/v1/clients", payload), 422)
    assert problem["errors"] == {"attributes": [problem["errors"]["attributes"][0]]}
    assert "key" in problem["errors"]["attributes"][0]
    assert not Client.objects.exists()


@pytest.mark.parametrize("bad", BAD)
def test_send_and_template_bodies_refuse_invalid_text(agent, make_user, api_for, client_obj, bad):
    api = api_for(agent)
    send = _raw(
        api,
        "post",
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": f"Hi {bad}"},
        HTTP_IDEMPOTENCY_KEY="k1",
    )
    assert "body" in _problem(send, 422)["errors"]
    manager = api_for(make_user("Manager"))
    for payload in (
        {"name": f"N{bad}", "body": "Hi", "language": "en"},
        {"name": "N", "body": f"Hi {bad}", "language": "en"},
    ):
        _problem(_raw(manager, "post", "/api/v1/templates", payload), 422)
    assert not Message.objects.exists()
    assert not MessageTemplate.objects.exists()


@pytest.mark.parametrize("query", ["search=a%00b", "search=%00", "page=1%00", "a%00=1"])
def test_query_strings_with_nul_are_a_422_problem(agent, api_for, query):
    _problem(api_for(agent).get(f"/api/v1/clients?{query}"), 422)


def test_ui_send_with_nul_is_refused_with_a_toast_and_stores_nothing(client, agent, client_obj):
    client.force_login(agent)
    response = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Hi\x00there", "idempotency_key": "ui-1"},
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.content.decode()
    assert "body must not contain the NUL character" in response.content.decode()
    assert not Message.objects.exists()


def test_search_box_with_nul_is_refused(client, agent):
    client.force_login(agent)
    response = client.get("/clients/", {"q": "Zo\x00ë"})
    assert response.status_code == 422
    assert "q must not contain the NUL character" in response.content.decode()


def test_a_stored_header_with_nul_is_refused(agent, api_for, client_obj):
    response = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k1",
        HTTP_USER_AGENT="curl\x00/8",
    )
    assert "User-Agent" in _problem(response, 422)["errors"]
    assert not Message.objects.exists()


_hostile_text = st.text(
    alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from(["\x00", "\ud800"])),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURES_OK)
@given(first_name=_hostile_text, note=_hostile_text)
def test_whatever_text_arrives_every_read_keeps_working(agent, api_for, first_name, note):
    """Stored or refused: either way the list, the detail and the page answer."""
    api = api_for(agent)
    payload = {"external_id": "EXT-H", "first_name": first_name, "attributes": {"note": note}}
    created = _raw(api, "post", "/api/v1/clients", payload)
    assert created.status_code in (201, 422), created.content[:300]
    if created.status_code == 422:
        assert created["Content-Type"] == PROBLEM
    assert api.get("/api/v1/clients").status_code == 200
    for client in Client.objects.all():
        assert api.get(f"/api/v1/clients/{client.id}").status_code == 200
        client.delete()


def test_deep_nesting_is_a_400_problem_not_a_crash(agent, api_for, client_obj):
    deep = "[" * 100_000 + "]" * 100_000
    response = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        deep,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deep",
    )
    assert "nested too deeply" in _problem(response, 400)["detail"]


def test_nesting_past_the_limit_in_attributes_is_a_422(agent, api_for):
    nested: dict = {}
    inner = nested
    for _ in range(40):
        inner["x"] = {}
        inner = inner["x"]
    payload = {"external_id": "EXT-1", "first_name": "Zoë", "attributes": nested}
    problem = _problem(_raw(api_for(agent), "post", "/api/v1/clients", payload), 422)
    assert any("nested more than" in m for ms in problem["errors"].values() for m in ms)


def test_a_body_over_the_size_limit_is_a_413_problem(agent, api_for, client_obj, settings):
    body = json.dumps({"body": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 10)})
    response = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="big",
    )
    problem = _problem(response, 413)
    assert problem["type"] == "https://clientdesk.dev/problems/body-too-large"
    assert f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE:,} bytes" in problem["detail"]
    assert not Message.objects.exists()


@pytest.mark.parametrize("path", ["/api/v1/clients", "/portal/api/v1/messages"])
def test_a_body_found_too_large_while_read_is_the_same_413(path, agent, api_for):
    """Django refuses a body while a view reads it (RequestDataTooBig) when the size check
    before the view did not see it coming: the answer is the one 413 problem, not a second
    type for the same refusal."""
    from django.core.exceptions import RequestDataTooBig

    from clientdesk.core.problems import problem_exception_handler

    announced = api_for(agent).post(
        path, b"x" * 3_000_000, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k"
    )
    read = problem_exception_handler(RequestDataTooBig("too big"), {})
    assert read is not None
    assert read.status_code == 413 and read.content_type == PROBLEM
    assert read.data == _problem(announced, 413)


def test_a_bad_host_is_a_400_problem(agent, api_for):
    problem = _problem(api_for(agent).get("/api/v1/clients", HTTP_HOST="evil.example"), 400)
    assert problem["type"].endswith("/bad-host")


def test_a_failed_csrf_check_is_a_403_problem(agent, client_obj):
    api = APIClient(enforce_csrf_checks=True)
    api.force_login(agent)
    response = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "hi"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="csrf",
    )
    assert "CSRF" in _problem(response, 403)["detail"]


@pytest.mark.parametrize("path", ["/api/v1/nothing", "/api/nothing", "/portal/api/v1/nothing"])
def test_unknown_api_paths_are_404_problems_under_every_api_prefix(agent, api_for, path):
    _problem(api_for(agent).get(path), 404)


def test_wrong_method_is_a_405_problem_with_allow(agent, api_for, client_obj):
    response = api_for(agent).delete(f"/api/v1/clients/{client_obj.id}")
    _problem(response, 405)
    assert "GET" in response["Allow"]


def test_pages_keep_their_html_errors(client, agent):
    client.force_login(agent)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_find_invalid_text_names_rows_stored_before_the_fix(make_client, capsys):
    call_command("find_invalid_text")
    assert "No stored text" in capsys.readouterr().out
    client = make_client()
    if connection.vendor != "sqlite":
        pytest.skip("PostgreSQL itself refuses NUL and lone surrogates in text and jsonb")
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE clients_client SET attributes = %s, last_name = %s WHERE id = %s",
            ['{"x": "\\ud800"}', "M\x00ller", client.id.hex],
        )
    with pytest.raises(CommandError, match="2 stored value"):
        call_command("find_invalid_text")
    out = capsys.readouterr().out
    assert f"clients.Client {client.id}: attributes.x must be valid Unicode" in out
    assert f"clients.Client {client.id}: last_name must not contain the NUL" in out
