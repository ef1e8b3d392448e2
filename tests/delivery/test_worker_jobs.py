"""The worker runs the apps' periodic jobs (core.jobs): a real `run_worker` process turns a
reply clock overdue and sends `message.reply_overdue`; a failing job stops neither deliveries
nor the other jobs."""

import time
import uuid
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from clientdesk.core import jobs
from clientdesk.core.request_meta import RequestMeta
from clientdesk.followup.models import FollowUpDue
from clientdesk.messaging.models import Message
from clientdesk.messaging.services.sending import message_send
from tests.delivery.test_worker_processes import start_worker, stop

pytestmark = pytest.mark.django_db(transaction=True)


def test_every_app_job_is_registered():
    names = {job.name for job in jobs.jobs_registered()}
    assert {"audit.ledger", "followup.overdue", "core.live_events_prune"} <= names


def test_a_running_worker_turns_a_clock_overdue_and_tells_the_endpoint(
    endpoint, receiver, agent, client_obj
):
    sent = message_send(
        sender=agent,
        client_id=client_obj.id,
        body="Please send your passport copy",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
        expects_reply=True,
        reply_due_at=timezone.now() + timedelta(days=1),
    ).message_id
    past = timezone.now() - timedelta(minutes=5)
    Message.objects.filter(pk=sent).update(reply_due_at=past)
    FollowUpDue.objects.filter(message_id=sent).update(due_at=past)
    worker = start_worker(concurrency=2, ready=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            types = [r.json["type"] for r in receiver.received]
            if "message.reply_overdue" in types:
                break
            time.sleep(0.1)
    finally:
        stop(worker)
    assert Message.objects.get(pk=sent).reply_state == "overdue"
    (overdue,) = [r for r in receiver.received if r.json["type"] == "message.reply_overdue"]
    assert overdue.verified == receiver.secrets
    message = overdue.json["data"]["message"]
    assert message["id"] == str(sent)
    assert message["reply_state"] == "overdue"
    assert message["reply_due_at"].startswith(past.strftime("%Y-%m-%dT%H:%M"))
    assert not FollowUpDue.objects.filter(message_id=sent).exists()


def test_a_failing_job_does_not_stop_the_others(monkeypatch):
    ran: list[str] = []

    def broken(now: datetime) -> None:
        ran.append("broken")
        raise RuntimeError("boom")

    def soon(now: datetime) -> datetime:
        ran.append("soon")
        return now + timedelta(seconds=0.2)  # asks to run sooner than its interval

    monkeypatch.setattr(jobs, "_JOBS", {})
    jobs.job_register(name="broken", run=broken, every_seconds=60)
    jobs.job_register(name="soon", run=soon, every_seconds=60)
    clock = jobs.JobClock()
    clock.run_due()
    assert ran == ["broken", "soon"]
    assert 0.0 <= clock.seconds_until_next() <= 0.2
    clock.run_due()  # nothing due yet
    assert ran == ["broken", "soon"]
    time.sleep(0.25)
    clock.run_due()
    assert ran == ["broken", "soon", "soon"]  # the broken one waits out its interval


def test_each_new_checkpoint_goes_to_the_endpoint_signed(
    endpoint, receiver, agent, client_obj, administrator, client
):
    from clientdesk.audit.jobs import ledger_tick
    from clientdesk.audit.signing import checkpoint_open, current_verifier
    from clientdesk.delivery.models import Delivery
    from clientdesk.delivery.worker import Worker

    message_send(
        sender=agent,
        client_id=client_obj.id,
        body="Hello",
        idempotency_key=str(uuid.uuid4()),
        meta=RequestMeta(),
    )
    checkpoint = ledger_tick()
    assert checkpoint is not None
    assert ledger_tick() is None  # nothing new: no second checkpoint, no second webhook
    Worker(concurrency=4, name="test-worker").run_once()
    (sent,) = [r for r in receiver.received if r.json["type"] == "audit.checkpoint"]
    assert sent.verified == receiver.secrets
    note = sent.json["data"]["checkpoint"]
    assert note == checkpoint.note
    opened = checkpoint_open(note, [current_verifier()])
    assert opened.tree_size == checkpoint.tree_size == sent.json["data"]["tree_size"]
    delivery = Delivery.objects.get(payload__type="audit.checkpoint")
    assert delivery.client is None and delivery.status == "delivered"
    # The Integrations page lists it without a client; the staff retry refuses it.
    client.force_login(administrator)
    page = client.get("/integrations/")
    assert page.status_code == 200
    assert '<code class="event-type">audit.checkpoint</code>' in page.content.decode()
    assert "— (the audit ledger)" in page.content.decode()
    client.force_login(agent)
    refused = client.post(f"/deliveries/{delivery.id}/retry/", HTTP_HX_REQUEST="true")
    assert refused.status_code == 404
