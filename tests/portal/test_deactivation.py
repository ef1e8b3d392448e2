"""Deactivating a client (PATCH /api/v1/clients/{id} with "is_active": false) ends their
portal sessions at once, refuses new ones and new messages, keeps the history, and is in the
ledger; reactivating restores both. Bad changes are problems naming the field, and change
nothing."""

import json
import uuid

import pytest

from clientdesk.audit.models import AuditEntry
from clientdesk.clients.models import Client
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from clientdesk.portal.services import portal_link_create

pytestmark = pytest.mark.django_db


def patch(api, client, body):
    return api.patch(
        f"/api/v1/clients/{client.id}", data=json.dumps(body), content_type="application/json"
    )


def send(api, client, key=None):
    return api.post(
        f"/api/v1/clients/{client.id}/messages",
        {"body": "Hello"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )


def test_deactivation_ends_sessions_refuses_sends_and_reactivation_restores(
    agent, api_for, client_obj, portal_for, integration_api
):
    staff = api_for(agent)
    portal = portal_for(client_obj)
    first = send(staff, client_obj, key="before")
    assert first.status_code == 201
    assert portal.get("/portal/api/v1/messages").status_code == 200

    answer = patch(staff, client_obj, {"is_active": False})
    assert answer.status_code == 200, answer.content
    assert answer.json()["is_active"] is False and answer.json()["deactivated_at"]

    # The session ends at once; no new session, link or message.
    assert portal.get("/portal/api/v1/messages").status_code == 401
    issued = integration_api.post(
        "/api/v1/portal/sessions", {"client_id": str(client_obj.id)}, format="json"
    )
    assert issued.status_code == 422 and "deactivated" in issued.json()["detail"]
    refused = send(staff, client_obj)
    assert refused.status_code == 422
    assert "deactivated" in refused.json()["detail"]
    assert "client" in refused.json()["errors"]
    with pytest.raises(Exception, match="deactivated"):
        portal_link_create(client=Client.objects.get(pk=client_obj.pk))
    # A retry of the send that went through still gets its first answer; history stays.
    replay = send(staff, client_obj, key="before")
    assert replay.status_code == 201 and replay.json()["id"] == first.json()["id"]
    assert Message.objects.filter(client=client_obj).count() == 1
    change = AuditEntry.objects.filter(action="client.changed", object_id=str(client_obj.id))
    assert change.latest("id").data == {
        "before": {"is_active": True},
        "after": {"is_active": False},
    }

    assert patch(staff, client_obj, {"is_active": True}).json()["deactivated_at"] is None
    assert portal_for(client_obj).get("/portal/api/v1/messages").status_code == 200
    assert send(staff, client_obj).status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"is_active": "no"}, "is_active"),
        ({"is_active": 0}, "is_active"),
        ({"first_name": ""}, "first_name"),
        ({"first_name": "A\u0000"}, "first_name"),
        ({"language": "x" * 50}, "language"),
        ({"id": str(uuid.uuid4())}, "id"),
        ({"search_text": "x"}, "search_text"),
        ({"attributes": {"a": {"b": {"c": {"d": {"e": 1}}}}}}, "attributes"),
    ],
)
def test_bad_changes_are_problems_naming_the_field_and_change_nothing(
    agent, api_for, client_obj, body, field
):
    before = Client.objects.filter(pk=client_obj.pk).values().get()
    answer = patch(api_for(agent), client_obj, body)
    assert answer.status_code in (400, 422), answer.content
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert field in json.dumps(problem.get("errors", {})) or field in problem["detail"]
    assert Client.objects.filter(pk=client_obj.pk).values().get() == before


@pytest.mark.parametrize("body", [[], "x", 7, None])
def test_a_body_that_is_not_an_object_is_refused(agent, api_for, client_obj, body):
    answer = patch(api_for(agent), client_obj, body)
    assert answer.status_code in (400, 422)
    assert answer["Content-Type"] == "application/problem+json"


def test_a_change_to_another_clients_external_id_is_a_conflict(agent, api_for, make_client):
    one, two = make_client(), make_client()
    answer = patch(api_for(agent), two, {"external_id": one.external_id})
    assert answer.status_code == 409
    assert Client.objects.get(pk=two.pk).external_id != one.external_id


def test_viewers_may_not_deactivate(viewer, api_for, client_obj):
    answer = patch(api_for(viewer), client_obj, {"is_active": False})
    assert answer.status_code == 403
    assert Client.objects.get(pk=client_obj.pk).is_active


def test_the_staff_pages_show_a_deactivated_client(agent, client, client_obj):
    Client.objects.filter(pk=client_obj.pk).update(is_active=False)
    client.force_login(agent)
    listing = client.get("/clients/").content.decode()
    assert "Deactivated" in listing
    assert f'href="/clients/{client_obj.id}/send/"' not in listing
    details = client.get(f"/clients/{client_obj.id}/").content.decode()
    assert 'id="client-deactivated"' in details


def test_the_service_refuses_too(agent, client_obj):
    Client.objects.filter(pk=client_obj.pk).update(is_active=False)
    with pytest.raises(Exception, match="deactivated"):
        message_send(
            sender=agent,
            client_id=client_obj.id,
            body="Hi",
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(),
        )


def test_a_change_touches_only_the_fields_given(agent, api_for, make_client):
    """The create fields' defaults (language "en", empty attributes) never apply to a PATCH."""
    client = make_client(language="de")
    Client.objects.filter(pk=client.pk).update(attributes={"tier": "gold"})
    answer = patch(api_for(agent), client, {"first_name": "Jürgen"})
    assert answer.status_code == 200, answer.content
    stored = Client.objects.get(pk=client.pk)
    assert (stored.first_name, stored.language, stored.attributes) == (
        "Jürgen",
        "de",
        {"tier": "gold"},
    )
