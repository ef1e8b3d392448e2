"""While the outgoing endpoint is disabled (by hand, after a 410, after a day of failures)
every message still gets its webhook delivery: it waits, visibly and with the reason, and goes
out in order once the endpoint is enabled again. With no webhook or email at all, staff are told
the message is in the client's cabinet, which holds every message."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from clientdesk.core.request_meta import RequestMeta
from clientdesk.delivery.models import Channel, Delivery, DeliveryStatus, OutgoingEndpoint
from clientdesk.delivery.services.endpoints import endpoint_configure
from clientdesk.delivery.worker import Worker
from clientdesk.portal.services import portal_message_read, portal_reply_create
from tests.sending import send_text

pytestmark = pytest.mark.django_db


def send(agent, client, body: str) -> uuid.UUID:
    return send_text(agent, client, body).message_id


def step() -> None:
    Worker(concurrency=4, name="test-worker").run_once()


def bodies(receiver) -> list[str]:
    return [
        r.json["data"]["message"]["body"]
        for r in receiver.received
        if r.json["type"] == "message.sent"
    ]


def send_from_the_panel(web, agent, client):
    web.force_login(agent)
    answer = web.post(
        f"/clients/{client.id}/messages/",
        {"body": "Hello", "idempotency_key": str(uuid.uuid4())},
        HTTP_HX_REQUEST="true",
    )
    return answer, answer.content.decode()


def enable(administrator, receiver) -> None:
    endpoint_configure(user=administrator, url=receiver.url, enabled=True)


def test_messages_sent_while_disabled_by_hand_wait_then_go_out_in_order(
    endpoint, receiver, administrator, agent, client_obj
):
    endpoint_configure(user=administrator, url=receiver.url, enabled=False)
    sent = [send(agent, client_obj, f"Waiting {i}") for i in range(5)]
    step()
    assert receiver.received == []
    waiting = Delivery.objects.filter(channel=Channel.WEBHOOK, subject_id__in=sent)
    assert waiting.count() == 5
    assert set(waiting.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    assert set(waiting.values_list("attempt_count", flat=True)) == {0}

    enable(administrator, receiver)
    step()
    step()
    assert bodies(receiver) == [f"Waiting {i}" for i in range(5)]
    assert set(waiting.values_list("status", flat=True)) == {DeliveryStatus.DELIVERED}


def test_after_a_410_later_messages_wait_and_are_released_on_enable(
    endpoint, receiver, administrator, agent, client_obj
):
    receiver.respond = lambda r: (410, {}, b"gone")
    first = send(agent, client_obj, "Refused")
    step()
    assert not OutgoingEndpoint.objects.get().enabled
    later = send(agent, client_obj, "After the 410")
    step()
    assert len(receiver.received) == 1
    receiver.respond = lambda r: (200, {}, b"ok")
    enable(administrator, receiver)
    step()
    assert bodies(receiver) == ["Refused", "After the 410"]
    assert Delivery.objects.get(subject_id=first).status == DeliveryStatus.FAILED
    assert Delivery.objects.get(subject_id=later).status == DeliveryStatus.DELIVERED


def test_after_a_day_of_failures_later_messages_wait_and_are_released_on_enable(
    endpoint, receiver, administrator, agent, client_obj
):
    receiver.respond = lambda r: (500, {}, b"down")
    send(agent, client_obj, "Failing")
    step()
    OutgoingEndpoint.objects.update(failing_since=timezone.now() - timedelta(hours=24, seconds=1))
    Delivery.objects.update(next_attempt_at=timezone.now())
    step()
    assert not OutgoingEndpoint.objects.get().enabled
    later = send(agent, client_obj, "While disabled")
    attempts = len(receiver.received)
    step()
    assert len(receiver.received) == attempts  # nothing goes out while disabled
    receiver.respond = lambda r: (200, {}, b"ok")
    enable(administrator, receiver)
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())
    step()
    assert Delivery.objects.get(subject_id=later).status == DeliveryStatus.DELIVERED
    assert "While disabled" in bodies(receiver)


def test_read_receipts_and_replies_wait_too(endpoint, receiver, administrator, agent, client_obj):
    sent = send(agent, client_obj, "Please confirm")
    step()
    endpoint_configure(user=administrator, url=receiver.url, enabled=False)
    portal_message_read(client=client_obj, message_id=sent)
    portal_reply_create(
        client=client_obj,
        body="Confirmed",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        in_reply_to=sent,
    )
    step()
    assert [r.json["type"] for r in receiver.received] == ["message.sent"]
    enable(administrator, receiver)
    step()
    assert [r.json["type"] for r in receiver.received] == [
        "message.sent",
        "message.read",
        "message.received",
    ]


def test_the_panel_shows_why_a_delivery_waits_and_the_toast_does_not_say_sent(
    endpoint, receiver, administrator, agent, client_obj, client
):
    OutgoingEndpoint.objects.update(
        enabled=False, disabled_reason="The endpoint answered 410 Gone: it asked not to receive."
    )
    answer, page = send_from_the_panel(client, agent, client_obj)
    assert answer.status_code == 200, page
    assert "webhook queued" not in page
    assert "cabinet; the webhook waits until the outgoing endpoint is enabled again." in page
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert "Waiting — the outgoing endpoint is disabled" in panel
    assert 'id="webhook-paused"' in panel
    assert "410 Gone" in panel


def test_with_no_notification_channel_the_message_is_in_the_cabinet(agent, client_obj, client):
    _, page = send_from_the_panel(client, agent, client_obj)
    assert "Sent to Zoë Müller&#x27;s cabinet." in page
    assert "queued" not in page
    assert Delivery.objects.count() == 0
    panel = client.get(f"/clients/{client_obj.id}/send/").content.decode()
    assert "In Zoë's cabinet" in panel
    assert "No webhook or email is set up" in panel
    assert "does not reach" not in panel and "no delivery channel" not in panel


def test_the_api_answer_lists_the_waiting_delivery(
    endpoint, receiver, administrator, agent, client_obj, api_for
):
    endpoint_configure(user=administrator, url=receiver.url, enabled=False)
    answer = api_for(agent).post(
        f"/api/v1/clients/{client_obj.id}/messages",
        data=json.dumps({"body": "Hello"}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert answer.status_code == 201, answer.content
    deliveries = answer.json()["deliveries"]
    assert [(d["channel"], d["status"]) for d in deliveries] == [("webhook", "pending")]
