import uuid

import pytest

pytestmark = pytest.mark.django_db

VALID = {
    "external_id": "ACME-1",
    "first_name": "Zoë",
    "last_name": "Müller",
    "email": "zoe@example.de",
    "phone": "+49 151 2345 6789",
    "language": "de",
    "attributes": {"tier": "gold", "score": 7, "vip": True},
}


def _problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def test_create_and_read_a_client(agent, api_for):
    api = api_for(agent)
    created = api.post("/api/v1/clients", VALID, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["full_name"] == "Zoë Müller"
    assert body["attributes"] == VALID["attributes"]
    uuid.UUID(body["id"])
    read = api.get(f"/api/v1/clients/{body['id']}")
    assert read.status_code == 200
    assert read.json() == body


def test_duplicate_external_id_is_409_and_keeps_the_first(agent, api_for):
    api = api_for(agent)
    first = api.post("/api/v1/clients", VALID, format="json").json()
    duplicate = api.post("/api/v1/clients", {**VALID, "first_name": "Other"}, format="json")
    body = _problem(duplicate, 409)
    assert "ACME-1" in body["detail"]
    assert api.get(f"/api/v1/clients/{first['id']}").json()["first_name"] == "Zoë"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"first_name": ""}, "first_name"),
        ({"first_name": "x" * 101}, "first_name"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "   "}, "external_id"),
        ({"email": "not-an-email"}, "email"),
        ({"phone": "call me maybe"}, "phone"),
        ({"language": "klingon"}, "language"),
        ({"attributes": ["not", "an", "object"]}, "attributes"),
        ({"attributes": {"bad name": "x"}}, "attributes"),
        ({"attributes": {"nested": {"a": 1}}}, "attributes"),
        ({"attributes": {"long": "x" * 501}}, "attributes"),
    ],
)
def test_invalid_client_is_422_naming_the_field_and_stores_nothing(agent, api_for, change, field):
    api = api_for(agent)
    response = api.post("/api/v1/clients", {**VALID, **change}, format="json")
    body = _problem(response, 422)
    assert field in body["errors"]
    assert field in body["detail"]
    assert api.get("/api/v1/clients").json()["results"] == []


def test_missing_required_fields_are_named(agent, api_for):
    body = _problem(api_for(agent).post("/api/v1/clients", {}, format="json"), 422)
    assert set(body["errors"]) == {"external_id", "first_name"}


def test_malformed_json_is_400(agent, api_for):
    response = api_for(agent).post(
        "/api/v1/clients", data="{not json", content_type="application/json"
    )
    body = _problem(response, 400)
    assert "JSON" in body["detail"]


def test_non_object_body_is_422(agent, api_for):
    response = api_for(agent).post("/api/v1/clients", [1, 2], format="json")
    _problem(response, 422)


@pytest.mark.parametrize("bad", ["not-a-uuid", "5b7e3f0c-2a41-4c8e-b6d9-0e1f2a3b4c5d"])
def test_unknown_client_is_404(agent, api_for, bad):
    _problem(api_for(agent).get(f"/api/v1/clients/{bad}"), 404)


def test_search_is_paginated(agent, api_for, make_client):
    for n in range(30):
        make_client(first_name="Søren", last_name=f"Jørgensen{n:02d}")
    make_client(first_name="Ana", last_name="García")
    api = api_for(agent)
    first = api.get("/api/v1/clients", {"search": "soren"}).json()
    assert len(first["results"]) == 25
    assert first["previous"] is None
    assert first["next"]
    second = api.get(first["next"]).json()
    assert len(second["results"]) == 5
    assert second["next"] is None
    assert {r["first_name"] for r in first["results"] + second["results"]} == {"Søren"}


@pytest.mark.parametrize("params", [{"page": "0"}, {"page": "abc"}, {"page_size": "1000"}])
def test_bad_paging_parameters_are_422(agent, api_for, params):
    body = _problem(api_for(agent).get("/api/v1/clients", params), 422)
    assert set(params) <= set(body["errors"])
