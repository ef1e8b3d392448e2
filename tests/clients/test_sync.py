"""How an integrator keeps its CRM and Clientdesk in step by the business's own id (docs/API.md,
"Syncing clients"): an exact lookup by `external_id`, and a 409 on a duplicate that names the
client already holding it, to those who may view clients."""

import pytest
from django.contrib.auth.models import Permission

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client

pytestmark = pytest.mark.django_db
PROBLEM = "application/problem+json"


@pytest.fixture
def crowd(make_client):
    """Clients whose names, emails and ids all contain the looked-up id's text."""
    target = make_client(external_id="CRM-000001", first_name="Target")
    for n in range(30):
        make_client(external_id=f"CRM-000001-{n}", first_name=f"CRM-000001 {n}")
    make_client(external_id="crm-000001", first_name="Lower")
    return target


def test_external_id_is_an_exact_lookup(agent, api_for, crowd):
    api = api_for(agent)
    found = api.get("/api/v1/clients", {"external_id": "CRM-000001"})
    assert found.status_code == 200
    body = found.json()
    assert [c["id"] for c in body["results"]] == [str(crowd.id)]
    assert body["next"] is None
    assert api.get("/api/v1/clients", {"external_id": "CRM-00000"}).json()["results"] == []
    assert api.get("/api/v1/clients", {"external_id": "%"}).json()["results"] == []
    assert api.get("/api/v1/clients", {"external_id": "CRM-000001 "}).json()["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"external_id": ""}, "external_id"),
        ({"external_id": "CRM-1", "search": "zoe"}, "external_id"),
        ({"external_id": "x" * 65}, "external_id"),
        ({"external_id": "CRM-1", "page": "0"}, "page"),
    ],
)
def test_a_lookup_that_cannot_be_exact_is_422_naming_it(agent, api_for, params, field):
    response = api_for(agent).get("/api/v1/clients", params)
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == PROBLEM
    assert field in response.json()["errors"]


def test_a_duplicate_names_the_existing_client_to_those_who_may_view_clients(agent, api_for):
    api = api_for(agent)
    first = api.post(
        "/api/v1/clients", {"external_id": "CRM-7", "first_name": "Ada"}, format="json"
    ).json()
    again = api.post("/api/v1/clients", {"external_id": "CRM-7", "first_name": "Bo"}, format="json")
    assert again.status_code == 409
    assert again["Content-Type"] == PROBLEM
    problem = again.json()
    assert problem["existing_id"] == first["id"]
    assert problem["existing_url"] == f"http://testserver/api/v1/clients/{first['id']}"
    assert problem["errors"] == {"external_id": ["A client with this external id already exists."]}
    assert api.get(problem["existing_url"]).json()["first_name"] == "Ada"


def test_a_caller_who_may_add_but_not_view_clients_is_not_told_which(make_user, api_for, agent):
    api_for(agent).post(
        "/api/v1/clients", {"external_id": "CRM-8", "first_name": "Ada"}, format="json"
    )
    adder = make_user(None)
    adder.user_permissions.add(Permission.objects.get(codename="add_client"))
    again = api_for(adder).post(
        "/api/v1/clients", {"external_id": "CRM-8", "first_name": "Bo"}, format="json"
    )
    assert again.status_code == 409
    assert "existing_id" not in again.json()
    assert "existing_url" not in again.json()


def test_renaming_onto_a_taken_external_id_names_its_holder(agent, api_for, make_client):
    holder = make_client(external_id="CRM-9")
    other = make_client(external_id="CRM-10")
    response = api_for(agent).patch(
        f"/api/v1/clients/{other.id}", {"external_id": "CRM-9"}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["existing_id"] == str(holder.id)
    assert Client.objects.get(pk=other.pk).external_id == "CRM-10"


def _sync(api, record):
    """The recipe of docs/API.md: look up by external_id, change it if it is there, else
    create it; a create that loses a race to another sync changes what won."""
    found = api.get("/api/v1/clients", {"external_id": record["external_id"]}).json()
    if found["results"]:
        url = f"/api/v1/clients/{found['results'][0]['id']}"
        return api.patch(url, record, format="json")
    created = api.post("/api/v1/clients", record, format="json")
    if created.status_code == 409:
        return api.patch(created.json()["existing_url"], record, format="json")
    return created


def test_the_sync_recipe_creates_then_updates_and_is_in_the_ledger(make_user, api_for):
    api = api_for(make_user("Integration"))
    record = {"external_id": "CRM-42", "first_name": "Ada", "email": "ada@example.com"}
    assert _sync(api, record).status_code == 201
    assert _sync(api, {**record, "email": "ada@example.org"}).status_code == 200
    assert _sync(api, {**record, "email": "ada@example.org"}).status_code == 200
    client = Client.objects.get(external_id="CRM-42")
    assert client.email == "ada@example.org"
    assert Client.objects.filter(external_id="CRM-42").count() == 1
    actions = list(
        AuditEntry.objects.filter(object_id=str(client.id)).values_list("action", flat=True)
    )
    assert sorted(actions) == ["client.changed", "client.created"]


def test_a_create_that_lost_the_race_follows_the_409_to_the_winner(make_user, api_for):
    api = api_for(make_user("Integration"))
    winner = api.post(
        "/api/v1/clients", {"external_id": "CRM-43", "first_name": "Won"}, format="json"
    )
    lost = api.post(
        "/api/v1/clients", {"external_id": "CRM-43", "first_name": "Late"}, format="json"
    )
    changed = api.patch(lost.json()["existing_url"], {"first_name": "Late"}, format="json")
    assert changed.status_code == 200
    assert changed.json()["id"] == winner.json()["id"]
    assert changed.json()["first_name"] == "Late"
