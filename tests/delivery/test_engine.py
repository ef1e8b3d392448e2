import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent
from clientdesk.delivery import policy
from clientdesk.delivery.models import Delivery, DeliveryAttempt, DeliveryStatus, OutgoingEndpoint
from clientdesk.delivery.selectors import endpoint_get
from clientdesk.delivery.services.endpoints import endpoint_rotate_secret
from clientdesk.delivery.services.queue import deliveries_claim, delivery_retry_now
from clientdesk.delivery.worker import Worker
from clientdesk.messaging.models import Message
from tests.sending import send_text

pytestmark = pytest.mark.django_db


def send(agent, client, body="Hello {{firstName}}"):
    return send_text(agent, client, body)


def step() -> None:
    """One pass of a real worker: claim what is due, attempt it, record the outcome."""
    Worker(concurrency=2, name="test-worker").run_once()


def test_no_endpoint_means_no_webhook_delivery(agent, client_obj):
    send(agent, client_obj)
    assert Delivery.objects.count() == 0


def test_send_queues_a_webhook_in_the_same_transaction_and_the_worker_delivers_it(
    endpoint, receiver, agent, client_obj
):
    result = send(agent, client_obj)
    delivery = Delivery.objects.get()
    assert delivery.subject_id == result.message_id
    assert delivery.status == DeliveryStatus.PENDING
    assert result.response["deliveries"][0]["status"] == "pending"
    assert receiver.received == []  # nothing leaves the process before the worker runs

    step()

    (request,) = receiver.wait_for(1)
    assert request.verified == [endpoint.secret]
    message = Message.objects.get()
    assert request.json == {
        "type": "message.sent",
        "timestamp": message.created_at.isoformat().replace("+00:00", "Z"),
        "data": {
            "message": {
                "id": str(message.id),
                "body": "Hello Zoë",
                "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
                "sender": {"id": str(agent.id), "name": "Alex Agent"},
                "category": "service",
                "broadcast_id": None,
                "attachments": [],
                "document_requests": [],
            },
            "client": {"id": str(client_obj.id), "external_id": client_obj.external_id},
        },
    }
    assert request.headers["webhook-id"] == delivery.webhook_id
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.delivered_at is not None
    attempt = DeliveryAttempt.objects.get()
    assert (attempt.number, attempt.status_code, attempt.response_excerpt) == (1, 200, "ok")
    assert ActivityEvent.objects.filter(type="message.delivered", subject_id=message.id).exists()


def test_failures_are_retried_with_a_stable_webhook_id_until_delivered(
    endpoint, receiver, agent, client_obj
):
    answers = iter([500, 503, 200])
    receiver.respond = lambda r: (next(answers), {}, b"nope")
    send(agent, client_obj)
    for _ in range(3):
        step()
    requests = receiver.wait_for(3)
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert all(r.verified for r in requests)
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert [a.status_code for a in delivery.attempts.order_by("number")] == [500, 503, 200]
    assert delivery.attempt_count == 3


def test_retry_schedule_and_jitter(settings):
    settings.DELIVERY_RETRY_SCALE = 1.0
    for step_index, base in enumerate(policy.SCHEDULE[1:]):
        delay = policy.next_delay(step=step_index).total_seconds()
        assert 0.8 * base <= delay <= 1.2 * base
    assert policy.next_delay(step=len(policy.SCHEDULE) - 1) is None
    # Retry-After is honoured between 1x and 2x of the scheduled delay (5 min after step 1).
    assert policy.next_delay(step=1, retry_after=7).total_seconds() == 300
    assert policy.next_delay(step=1, retry_after=450).total_seconds() == 450
    assert policy.next_delay(step=1, retry_after=99999).total_seconds() == 600
    # A throttled receiver waits at least a minute even early in the schedule.
    assert policy.next_delay(step=0, slow_down=True).total_seconds() >= 48


def test_429_retry_after_is_recorded_and_scheduled(endpoint, receiver, agent, client_obj, settings):
    settings.DELIVERY_RETRY_SCALE = 1.0
    receiver.respond = lambda r: (429, {"Retry-After": "90"}, b"slow down")
    send(agent, client_obj)
    before = timezone.now()
    step()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING
    assert delivery.last_status_code == 429
    wait = (delivery.next_attempt_at - before).total_seconds()
    assert 60 <= wait <= 130  # at least the 60 s floor; Retry-After 90 within [1x, 2x]


def test_410_disables_the_endpoint_and_fails_the_delivery(
    endpoint, receiver, agent, client_obj, client, administrator
):
    receiver.respond = lambda r: (410, {}, b"gone")
    send(agent, client_obj)
    step()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    ep = OutgoingEndpoint.objects.get()
    assert not ep.enabled
    assert "410" in ep.disabled_reason
    assert ActivityEvent.objects.filter(type="message.delivery_failed").exists()
    client.force_login(administrator)
    page = client.get("/clients/").content.decode()
    assert "Webhook delivery is paused" in page
    # Later messages wait, queued, while the endpoint is disabled (test_paused_endpoint.py).
    send(agent, client_obj, body="Second")
    step()
    assert len(receiver.received) == 1
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING).count() == 1


def test_exhausted_schedule_fails_then_retry_now_starts_again(
    endpoint, receiver, agent, client_obj
):
    receiver.respond = lambda r: (500, {}, b"down")
    send(agent, client_obj)
    for _ in range(len(policy.SCHEDULE)):
        step()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.attempt_count == len(policy.SCHEDULE)
    receiver.respond = lambda r: (204, {}, b"")
    delivery_retry_now(delivery_id=delivery.id, actor=None)
    step()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert delivery.attempts.count() == len(policy.SCHEDULE) + 1


def test_an_endpoint_failing_for_a_day_is_disabled(endpoint, receiver, agent, client_obj):
    receiver.respond = lambda r: (500, {}, b"down")
    send(agent, client_obj)
    step()
    OutgoingEndpoint.objects.update(failing_since=timezone.now() - timedelta(hours=24, seconds=1))
    step()
    ep = OutgoingEndpoint.objects.get()
    assert not ep.enabled
    assert "Every attempt has failed since" in ep.disabled_reason


def test_a_success_resets_the_failing_clock(endpoint, receiver, agent, client_obj):
    answers = iter([500, 200])
    receiver.respond = lambda r: (next(answers), {}, b"")
    send(agent, client_obj)
    step()
    assert OutgoingEndpoint.objects.get().failing_since is not None
    step()
    assert OutgoingEndpoint.objects.get().failing_since is None


def test_secret_rotation_signs_with_both_for_the_overlap(
    endpoint, receiver, agent, client_obj, administrator
):
    old = endpoint.secret
    rotated = endpoint_rotate_secret(user=administrator)
    receiver.secrets = [old, rotated.secret]
    send(agent, client_obj)
    step()
    (request,) = receiver.wait_for(1)
    assert set(request.verified) == {old, rotated.secret}
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    OutgoingEndpoint.objects.update(
        previous_secret_expires_at=timezone.now() - timedelta(seconds=1)
    )
    send(agent, client_obj, body="After the overlap")
    step()
    assert receiver.wait_for(2)[1].verified == [rotated.secret]


def test_lost_lease_is_taken_over_and_recorded(endpoint, receiver, agent, client_obj):
    send(agent, client_obj)
    assert len(deliveries_claim(worker="crashed-worker", limit=5).deliveries) == 1
    # Leased: nobody else takes it.
    assert deliveries_claim(worker="other", limit=5).deliveries == []
    Delivery.objects.update(lease_until=timezone.now() - timedelta(seconds=1))
    step()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.DELIVERED
    first, second = delivery.attempts.order_by("number")
    assert "crashed-worker stopped during the attempt" in first.error
    assert second.status_code == 200


def test_retry_now_explains_a_disabled_endpoint(endpoint, receiver, agent, client_obj):
    from clientdesk.core.errors import ValidationFailed

    receiver.respond = lambda r: (410, {}, b"gone")
    send(agent, client_obj)
    step()
    delivery = Delivery.objects.get()
    with pytest.raises(ValidationFailed, match=r"endpoint is disabled.*410 Gone"):
        delivery_retry_now(delivery_id=delivery.id, actor=None)
    assert Delivery.objects.get().status == DeliveryStatus.FAILED


def test_retry_now_from_the_panel_needs_the_send_permission(
    endpoint, receiver, agent, viewer, client_obj, client
):
    receiver.respond = lambda r: (500, {}, b"down")
    send(agent, client_obj)
    for _ in range(len(policy.SCHEDULE)):
        step()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    client.force_login(viewer)
    refused = client.post(f"/deliveries/{delivery.id}/retry/", HTTP_HX_REQUEST="true")
    assert refused.status_code == 403
    assert Delivery.objects.get().status == DeliveryStatus.FAILED
    client.force_login(agent)
    assert client.post(f"/deliveries/{uuid.uuid4()}/retry/").status_code == 404
    accepted = client.post(f"/deliveries/{delivery.id}/retry/", HTTP_HX_REQUEST="true")
    assert accepted.status_code == 200
    assert "Retrying at" in accepted.content.decode()
    assert "Retry now" not in accepted.content.decode()
    assert Delivery.objects.get().status == DeliveryStatus.PENDING
    from clientdesk.audit.models import AuditEntry

    retried = AuditEntry.objects.get(action="delivery.retried")
    assert (retried.actor_id, retried.object_id) == (str(agent.pk), str(delivery.id))


def test_a_worker_does_not_spin_on_webhooks_paused_by_a_disabled_endpoint(
    endpoint, receiver, agent, client_obj
):
    send(agent, client_obj)
    OutgoingEndpoint.objects.update(enabled=False)
    worker = Worker(concurrency=2, name="idle-worker")
    assert worker.run_once() == []
    # Nothing it may take is due, so it sleeps the full idle time instead of looping.
    assert worker._idle_timeout(endpoint_get()) == pytest.approx(5.0)
    OutgoingEndpoint.objects.update(enabled=True)
    assert worker._idle_timeout(endpoint_get()) == pytest.approx(0.05)
