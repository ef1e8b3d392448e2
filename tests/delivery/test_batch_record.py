"""A worker records finished attempts a batch per transaction: the statements do not grow with
the batch, each delivery still moves on by its own outcome, and a lost lease stays the new
holder's."""

import contextlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clientdesk.audit.models import ActivityEvent, ActivityType
from clientdesk.core.models import LiveEvent
from clientdesk.delivery.models import Delivery, DeliveryAttempt, DeliveryStatus, OutgoingEndpoint
from clientdesk.delivery.services.queue import attempts_record, deliveries_claim, delivery_attempt
from clientdesk.delivery.worker import Worker
from tests.sending import send_text

pytestmark = pytest.mark.django_db(transaction=True)


def send(agent, client, body="Hello {{firstName}}"):
    return send_text(agent, client, body)


def claimed_and_attempted(count, agent, client_obj):
    for n in range(count):
        send(agent, client_obj, body=f"Message {n}")
    claimed = deliveries_claim(worker="w1", limit=count)
    assert len(claimed.deliveries) == count
    return [delivery_attempt(delivery=d, endpoint=claimed.endpoint) for d in claimed.deliveries]


def recording_statements(attempted):
    with CaptureQueriesContext(connection) as captured:
        attempts_record(worker="w1", attempted=attempted)
    return [q["sql"] for q in captured.captured_queries]


@contextlib.contextmanager
def running(worker: Worker) -> Iterator[threading.Thread]:
    """`worker.run()` in a thread, on its own connection, until the block ends."""

    def run() -> None:
        try:
            worker.run()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield thread
    finally:
        worker.stop()
        thread.join(30)
    assert not thread.is_alive()


def delivered(message_ids, *, want: int, seconds: float = 20.0) -> int:
    """How many of the messages' deliveries are delivered, once `want` are or time is up."""
    deadline = time.monotonic() + seconds
    while True:
        count = Delivery.objects.filter(
            subject_id__in=message_ids, status=DeliveryStatus.DELIVERED
        ).count()
        if count >= want or time.monotonic() > deadline:
            return count
        time.sleep(0.05)


def test_recording_twenty_attempts_takes_the_statements_of_one(
    endpoint, receiver, agent, client_obj
):
    one = recording_statements(claimed_and_attempted(1, agent, client_obj))
    twenty = recording_statements(claimed_and_attempted(20, agent, client_obj))
    assert len(twenty) == len(one)
    assert Delivery.objects.filter(status=DeliveryStatus.DELIVERED).count() == 21
    assert DeliveryAttempt.objects.count() == 21
    assert ActivityEvent.objects.filter(type=ActivityType.MESSAGE_DELIVERED).count() == 21
    assert LiveEvent.objects.filter(type="delivery.updated").count() == 21
    assert len(receiver.received) == 21


def test_each_delivery_of_a_batch_moves_on_by_its_own_outcome(
    endpoint, receiver, agent, client_obj
):
    receiver.respond = lambda r: (
        (500, {}, b"no") if r.json["data"]["message"]["body"] == "Message 1" else (204, {}, b"")
    )
    attempted = claimed_and_attempted(3, agent, client_obj)
    by_body = {a.delivery.payload["data"]["message"]["body"]: a.delivery.pk for a in attempted}
    attempts_record(worker="w1", attempted=attempted)

    failed = Delivery.objects.get(pk=by_body["Message 1"])
    assert failed.status == DeliveryStatus.PENDING
    assert failed.schedule_step == 1
    assert failed.next_attempt_at is not None
    assert failed.last_error == "HTTP 500"
    for body in ("Message 0", "Message 2"):
        delivered = Delivery.objects.get(pk=by_body[body])
        assert delivered.status == DeliveryStatus.DELIVERED
        assert delivered.leased_by == ""
    # The last attempt to finish succeeded: no failing clock is left running.
    assert OutgoingEndpoint.objects.get().failing_since is None
    events = LiveEvent.objects.filter(type="delivery.updated").order_by("id")
    assert [e.data["status"] for e in events] == ["delivered", "pending", "delivered"]


def test_a_failure_after_a_success_in_one_batch_starts_the_failing_clock(
    endpoint, receiver, agent, client_obj
):
    receiver.respond = lambda r: (
        (503, {}, b"") if r.json["data"]["message"]["body"] == "Message 1" else (200, {}, b"")
    )
    attempted = claimed_and_attempted(2, agent, client_obj)
    attempted.sort(key=lambda a: a.delivery.payload["data"]["message"]["body"])
    attempts_record(worker="w1", attempted=attempted)
    assert OutgoingEndpoint.objects.get().failing_since is not None


def test_a_gone_anywhere_in_the_batch_disables_the_endpoint(endpoint, receiver, agent, client_obj):
    receiver.respond = lambda r: (
        (410, {}, b"") if r.json["data"]["message"]["body"] == "Message 0" else (200, {}, b"")
    )
    attempted = claimed_and_attempted(3, agent, client_obj)
    attempted.sort(key=lambda a: a.delivery.payload["data"]["message"]["body"])
    attempts_record(worker="w1", attempted=attempted)
    endpoint = OutgoingEndpoint.objects.get()
    assert not endpoint.enabled
    assert "410" in endpoint.disabled_reason
    gone = Delivery.objects.get(pk=attempted[0].delivery.pk)
    assert gone.status == DeliveryStatus.FAILED


def test_a_lost_lease_in_a_batch_is_left_to_its_new_holder(endpoint, receiver, agent, client_obj):
    attempted = claimed_and_attempted(2, agent, client_obj)
    lost = attempted[0].delivery
    Delivery.objects.filter(pk=lost.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    (taken,) = deliveries_claim(worker="w2", limit=5).deliveries
    assert taken.pk == lost.pk

    attempts_record(worker="w1", attempted=attempted)

    still_leased = Delivery.objects.get(pk=lost.pk)
    assert still_leased.status == DeliveryStatus.SENDING
    assert still_leased.leased_by == "w2"
    assert Delivery.objects.get(pk=attempted[1].delivery.pk).status == DeliveryStatus.DELIVERED
    # w2 wrote w1's attempt as "stopped during the attempt"; it did finish, and says how.
    (record,) = DeliveryAttempt.objects.filter(delivery_id=lost.pk, number=lost.attempt_count)
    assert (record.worker, record.status_code, record.error) == ("w1", 200, "")


def test_a_running_worker_records_a_slow_attempt_without_holding_up_fast_ones(
    endpoint, receiver, agent, client_obj
):
    """The main thread records what finished while a slow attempt is still in flight."""
    release = threading.Event()

    def respond(r):
        if r.json["data"]["message"]["body"] == "slow":
            release.wait(20)
        return 200, {}, b""

    receiver.respond = respond
    with running(Worker(concurrency=4, name="batch-worker")):
        try:
            slow = send(agent, client_obj, body="slow")
            fast = [send(agent, client_obj, body=f"fast {n}") for n in range(3)]
            assert delivered([f.message_id for f in fast], want=3) == 3
            status = Delivery.objects.get(subject_id=slow.message_id).status
            assert status == DeliveryStatus.SENDING
            release.set()
            assert delivered([slow.message_id], want=1) == 1
        finally:
            release.set()  # before the worker stops: it waits for what is in flight


def _refuse_attempt_records(refuse: bool) -> None:
    """A trigger that makes the database refuse every attempt record a worker writes for a
    finished attempt (as a broken connection or a full disk would make a recording fail), or
    its removal. The row a claim writes for an attempt cut short ("stopped during the
    attempt", never an empty error) still goes in, so expired leases are taken again."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            if refuse:
                cursor.execute(
                    "CREATE FUNCTION refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN IF NEW.error = '' THEN RAISE EXCEPTION 'attempt records refused'; "
                    "END IF; RETURN NEW; END $$"
                )
                cursor.execute(
                    "CREATE TRIGGER refuse_attempt BEFORE INSERT ON delivery_deliveryattempt "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_attempt()"
                )
            else:
                cursor.execute("DROP TRIGGER refuse_attempt ON delivery_deliveryattempt")
                cursor.execute("DROP FUNCTION refuse_attempt()")
        elif refuse:
            cursor.execute(
                "CREATE TRIGGER refuse_attempt BEFORE INSERT ON delivery_deliveryattempt "
                "WHEN NEW.error = '' BEGIN SELECT RAISE(ABORT, 'attempt records refused'); END"
            )
        else:
            cursor.execute("DROP TRIGGER refuse_attempt")


def test_a_recording_the_database_refuses_stops_neither_the_worker_nor_the_deliveries(
    endpoint, receiver, agent, client_obj, settings
):
    settings.DELIVERY_LEASE_SECONDS = 1

    def message_requests():
        # The worker's ledger job may queue audit.checkpoint webhooks too: leave those out.
        return [r for r in list(receiver.received) if r.json["type"] == "message.sent"]

    def arrivals() -> Counter[str]:
        return Counter(r.headers["webhook-id"] for r in message_requests())

    _refuse_attempt_records(True)
    refused = True
    try:
        with running(Worker(concurrency=4, name="refused-worker")) as thread:
            sent = [send(agent, client_obj, body=f"Message {n}") for n in range(3)]
            # While the database refuses every record, each lease runs out and the message goes
            # again under its webhook-id: wait until each went twice, the worker still running.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                seen = arrivals()
                if len(seen) == 3 and min(seen.values()) >= 2:
                    break
                time.sleep(0.05)
            assert len(seen) == 3
            assert min(seen.values()) >= 2
            assert thread.is_alive()
            _refuse_attempt_records(False)
            refused = False
            assert delivered([s.message_id for s in sent], want=3, seconds=30) == 3
            assert thread.is_alive()
    finally:
        if refused:  # never leave the trigger behind for the tests that follow
            _refuse_attempt_records(False)
    expected = Delivery.objects.filter(subject_id__in=[s.message_id for s in sent])
    assert set(arrivals()) == set(expected.values_list("webhook_id", flat=True))
