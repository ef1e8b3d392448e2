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


# --- the portal: two clients, every portal endpoint ---------------------------------------------

PORTAL_ROLES_THAT_ISSUE = {"Administrator", "Integration"}


@pytest.mark.parametrize("role", [*ROLES, "Integration"])
def test_only_integration_and_administrators_issue_portal_sessions(actors, client_obj, role):
    _, _, api = actors(role)
    response = api.post("/api/v1/portal/sessions", {"client_id": str(client_obj.id)}, format="json")
    assert response.status_code == (201 if role in PORTAL_ROLES_THAT_ISSUE else 403)


def test_every_portal_endpoint_with_two_clients(make_user, api_for, make_client, agent):
    import uuid

    from rest_framework.test import APIClient

    from clientdesk.core.request_meta import RequestMeta
    from clientdesk.messaging.services import message_send

    alice, bob = make_client(), make_client()
    messages = {
        c.id: message_send(
            sender=agent,
            client_id=c.id,
            body=f"to {c.first_name}",
            idempotency_key=str(uuid.uuid4()),
            meta=RequestMeta(),
        ).message_id
        for c in (alice, bob)
    }
    issuer = api_for(make_user("Integration"))

    def portal(client):
        token = issuer.post(
            "/api/v1/portal/sessions", {"client_id": str(client.id)}, format="json"
        ).json()["token"]
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return api

    doors = {
        "alice": portal(alice),
        "bob": portal(bob),
        "staff": api_for(agent),
        "none": APIClient(),
    }
    for name, api in doors.items():
        own = {"alice": alice, "bob": bob}.get(name)
        listing = api.get("/portal/api/v1/messages")
        events = api.get("/portal/api/v1/events?last_event_id=x")  # refused before streaming
        if own is None:
            assert listing.status_code == 401
            assert api.get("/portal/api/v1/events").status_code == 401
        else:
            assert [m["id"] for m in listing.json()["items"]] == [str(messages[own.id])]
            assert events.status_code == 400
        for target in (alice, bob):
            read = api.post(f"/portal/api/v1/messages/{messages[target.id]}/read")
            answer = api.post(
                "/portal/api/v1/messages",
                {"body": "hi", "in_reply_to": str(messages[target.id])},
                format="json",
                HTTP_IDEMPOTENCY_KEY=f"{name}-{target.id}",
            )
            if own is None:
                assert (read.status_code, answer.status_code) == (401, 401)
            elif own == target:
                assert (read.status_code, answer.status_code) == (200, 201)
            else:
                assert (read.status_code, answer.status_code) == (404, 422)
