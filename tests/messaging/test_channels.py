"""Where a message went (docs/API.md): every message is in the client's cabinet, so the API's
`channels`, the panel, its toast and the Messages page name the cabinet first and then each
delivery; only a deactivated client has a message nowhere to be seen."""

import uuid

import pytest

from clientdesk.clients.services import client_update
from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import OutgoingEndpoint
from clientdesk.portal.services import portal_message_read, portal_reply_create
from tests.sending import send_text

pytestmark = pytest.mark.django_db


def _channels(api, message_id):
    return api.get(f"/api/v1/messages/{message_id}").json()["channels"]


def test_without_webhook_or_email_the_cabinet_is_where_it_went(agent, client_obj, api_for):
    answer = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        {"body": "Hello"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert answer.status_code == 201
    assert answer.json()["channels"] == [{"channel": "cabinet", "status": "available"}]
    assert answer.json()["deliveries"] == []


def test_the_cabinet_then_each_delivery_with_its_status(agent, client_obj, api_for):
    OutgoingEndpoint.objects.create(
        pk=1, url="https://example.invalid/hook", enabled=True, email_enabled=True
    )
    api = api_for(agent)
    sent = send_text(agent, client_obj, "Hello")
    channels = _channels(api, sent.message_id)
    deliveries = {d["channel"]: d for d in sent.response["deliveries"]}
    assert channels == [
        {"channel": "cabinet", "status": "available"},
        {"channel": "email", "status": "pending", "delivery_id": deliveries["email"]["id"]},
        {"channel": "webhook", "status": "pending", "delivery_id": deliveries["webhook"]["id"]},
    ]
    listed = api.get(f"/api/v1/clients/{client_obj.id}/messages").json()["results"][0]
    assert listed["channels"] == channels
    across = api.get("/api/v1/messages").json()["results"][0]
    assert across["channels"] == channels


def test_the_cabinet_says_read_deactivated_or_from_the_client(agent, client_obj, api_for):
    api = api_for(agent)
    sent = send_text(agent, client_obj, "Hello")
    portal_message_read(client=client_obj, message_id=sent.message_id)
    assert _channels(api, sent.message_id)[0] == {"channel": "cabinet", "status": "read"}
    reply = portal_reply_create(
        client=client_obj, body="Thanks", idempotency_key="r1", meta=RequestMeta()
    )
    assert _channels(api, reply.message.id)[0] == {"channel": "cabinet", "status": "from_client"}
    client_update(actor=agent, client_id=client_obj.id, changes={"is_active": False})
    assert _channels(api, sent.message_id)[0] == {
        "channel": "cabinet",
        "status": "client_deactivated",
    }


@pytest.mark.parametrize(
    ("endpoint", "toast"),
    [
        (None, "Sent to Zoë Müller&#x27;s cabinet."),
        ({"enabled": True}, "Sent to Zoë Müller&#x27;s cabinet; webhook queued."),
        (
            {"enabled": True, "email_enabled": True},
            "Sent to Zoë Müller&#x27;s cabinet; webhook and email queued.",
        ),
        (
            {"enabled": False, "email_enabled": True},
            "Sent to Zoë Müller&#x27;s cabinet; email queued; the webhook waits until the "
            "outgoing endpoint is enabled again.",
        ),
    ],
    ids=["cabinet-only", "webhook", "webhook-and-email", "webhook-paused"],
)
def test_the_toast_names_the_cabinet_and_each_channel(client, agent, client_obj, endpoint, toast):
    if endpoint is not None:
        OutgoingEndpoint.objects.create(pk=1, url="https://example.invalid/hook", **endpoint)
    client.force_login(agent)
    answer = client.post(
        f"/clients/{client_obj.id}/messages/",
        {"body": "Hello", "idempotency_key": str(uuid.uuid4())},
        HTTP_HX_REQUEST="true",
    )
    html = answer.content.decode()
    assert toast in html
    assert "no delivery channel" not in html and "does not reach" not in html


def test_the_panel_and_messages_page_warn_only_when_no_one_can_see_it(client, agent, client_obj):
    send_text(agent, client_obj, "Hello")
    client.force_login(agent)
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert "In Zoë's cabinet" in panel
    assert 'id="client-inactive"' not in panel
    assert "In Zoë's cabinet" in client.get("/messages/").content.decode()

    client_update(actor=agent, client_id=client_obj.id, changes={"is_active": False})
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert "Not visible: Zoë is deactivated" in panel
    assert 'id="client-inactive"' in panel
    assert "Goes to" not in panel
    assert "Not visible: Zoë is deactivated" in client.get("/messages/").content.decode()
