"""Every role × every message action: shown in the UI only when allowed, refused by the server
otherwise."""

import pytest

from clientdesk.messaging.models import Message

pytestmark = pytest.mark.django_db

ROLES = ["Administrator", "Manager", "Agent", "Viewer", None]
CAN_SEND = {"Administrator", "Manager", "Agent"}
CAN_VIEW = {"Administrator", "Manager", "Agent", "Viewer"}


@pytest.fixture
def actors(make_user, api_for, client):
    def build(role):
        user = make_user(role)
        client.force_login(user)
        return user, client, api_for(user)

    return build


@pytest.mark.parametrize("role", ROLES)
def test_send_action_is_shown_only_to_senders(actors, client_obj, role):
    _, web, _ = actors(role)
    listing = web.get("/clients/").content.decode()
    drawer = web.get(f"/clients/{client_obj.id}/", HTTP_HX_REQUEST="true").content.decode()
    assert ("Send a message" in listing) == (role in CAN_SEND)
    assert ("Send a message" in drawer) == (role in CAN_SEND)
    assert "View details" in listing


@pytest.mark.parametrize("role", ROLES)
def test_server_enforces_send_for_every_surface(actors, client_obj, role):
    _, web, api = actors(role)
    allowed = role in CAN_SEND
    panel = web.get(f"/clients/{client_obj.id}/send/")
    assert (panel.status_code == 200) == allowed
    assert panel.status_code in (200, 403)

    ui_post = web.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "From the panel", "idempotency_key": f"ui-{role}"},
        HTTP_HX_REQUEST="true",
    )
    assert ui_post.status_code == (200 if allowed else 403)

    api_post = api.post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "From the API"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=f"api-{role}",
    )
    assert api_post.status_code == (201 if allowed else 403)
    assert Message.objects.count() == (2 if allowed else 0)


@pytest.mark.parametrize("role", ROLES)
def test_server_enforces_reading_messages_and_activity(actors, client_obj, role):
    _, web, api = actors(role)
    expected = 200 if role in CAN_VIEW else 403
    assert api.get(f"/api/v1/clients/{client_obj.id}/messages").status_code == expected
    assert api.get(f"/api/v1/clients/{client_obj.id}/activity").status_code == expected
    assert web.get(f"/clients/{client_obj.id}/activity/").status_code == expected
    # Clients themselves are visible to every member of staff.
    assert api.get(f"/api/v1/clients/{client_obj.id}").status_code == 200
    assert web.get("/clients/").status_code == 200


@pytest.mark.parametrize("role", ROLES)
def test_server_enforces_follow_up_pages_and_api(actors, role):
    _, web, api = actors(role)
    can_view = 200 if role in CAN_VIEW else 403
    assert web.get("/messages/").status_code == can_view
    assert api.get("/api/v1/messages").status_code == can_view
    admin = 200 if role == "Administrator" else 403
    assert web.get("/settings/follow-up/").status_code == admin
    assert api.get("/api/v1/settings/follow-up").status_code == admin
    listing = web.get("/clients/").content.decode()
    assert ('href="/messages/"' in listing) == (role in CAN_VIEW)
    assert ('href="/settings/follow-up/"' in listing) == (role == "Administrator")
