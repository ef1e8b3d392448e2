import uuid

import pytest

from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.services.sending import message_send

pytestmark = pytest.mark.django_db


def _send(sender, client, body):
    return message_send(
        sender=sender,
        client_id=client.id,
        body=body,
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )


def test_activity_api_lists_events_newest_first_with_actor(agent, viewer, api_for, client_obj):
    for n in range(3):
        _send(agent, client_obj, f"Message {n}")
    response = api_for(viewer).get(f"/api/v1/clients/{client_obj.id}/activity")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [e["data"]["body"] for e in results] == ["Message 2", "Message 1", "Message 0"]
    assert results[0]["type"] == "message.sent"
    assert results[0]["actor"] == {"type": "staff", "id": str(agent.id), "name": "Alex Agent"}
    assert results[0]["created_at"]


def test_activity_api_needs_view_permission(make_user, api_for, client_obj):
    response = api_for(make_user(None)).get(f"/api/v1/clients/{client_obj.id}/activity")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_activity_log_section_shows_messages_with_sender_and_pages(client, agent, client_obj):
    for n in range(25):
        _send(agent, client_obj, f"Note {n:02d}")
    client.force_login(agent)
    url = f"/clients/{client_obj.id}/activity/"
    first = client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert first.index("Note 24") < first.index("Note 05")
    assert "Note 04" not in first
    assert "Alex Agent" in first
    assert "Show older" in first
    older = client.get(url, {"page": "2"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Note 04" in older
    assert "Show older" not in older


def test_activity_log_refuses_users_without_view_permission(client, make_user, client_obj):
    client.force_login(make_user(None))
    response = client.get(f"/clients/{client_obj.id}/activity/")
    assert response.status_code == 403
