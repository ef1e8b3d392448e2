"""Broadcasts sent by real `manage.py run_worker` processes against the test database: one killed
(SIGKILL) mid-broadcast, two side by side on one broadcast, and a cancel raced against a worker
writing batches. Each recipient gets exactly one message, whatever happens."""

import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable

import pytest

from clientdesk.accounts.models import User
from clientdesk.clients.services import clients_bulk_create
from clientdesk.core.request_meta import RequestMeta
from clientdesk.messaging.models import Message
from clientdesk.outreach.models import Broadcast, BroadcastRecipient
from clientdesk.outreach.services import (
    broadcast_cancel,
    broadcast_create,
    broadcast_request_parse,
)
from tests.delivery.test_worker_processes import start_worker, stop

pytestmark = pytest.mark.django_db(transaction=True)
# A loaded machine writes a batch of 500 in a second or several: generous limits.
LIMIT = 240.0


def clients(n: int, tag: str) -> list[str]:
    rows = [
        {"external_id": f"{tag}-{i:05d}", "first_name": f"N{i}", "last_name": tag} for i in range(n)
    ]
    clients_bulk_create(rows=rows)
    return [row["external_id"] for row in rows]


def create(manager: User, external_ids: list[str], key: str | None = None) -> Broadcast:
    request = broadcast_request_parse(
        {
            "audience": {"external_ids": external_ids},
            "body": "Dear {{ firstName }}, our opening hours change.",
            "category": "service",
        }
    )
    broadcast, _ = broadcast_create(
        actor=manager, request=request, idempotency_key=key or str(uuid.uuid4()), meta=RequestMeta()
    )
    return broadcast


def wait_for(check: Callable[[], bool], what: str, timeout: float = LIMIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def sent(broadcast: Broadcast) -> int:
    return Broadcast.objects.values_list("sent", flat=True).get(pk=broadcast.pk)


def status(broadcast: Broadcast) -> str:
    return Broadcast.objects.values_list("status", flat=True).get(pk=broadcast.pk)


def assert_exactly_once(broadcast: Broadcast) -> None:
    """One message per sent recipient, none for the others, and the counts add up."""
    broadcast.refresh_from_db()
    per_client = Counter(
        Message.objects.filter(broadcast_id=broadcast.pk).values_list("client_id", flat=True)
    )
    assert all(n == 1 for n in per_client.values()), "a client got two messages"
    recipients = BroadcastRecipient.objects.filter(broadcast=broadcast)
    sent_to = set(recipients.filter(status="sent").values_list("client_id", flat=True))
    assert set(per_client) == sent_to
    assert not recipients.filter(status="sent", message__isnull=True).exists()
    assert broadcast.sent == len(sent_to)
    counts = Counter(recipients.values_list("status", flat=True))
    assert (broadcast.sent, broadcast.skipped, broadcast.cancelled, broadcast.pending) == (
        counts["sent"],
        counts["skipped"],
        counts["cancelled"],
        counts["pending"],
    )
    assert broadcast.recipients == sum(counts.values())


@pytest.fixture
def manager(make_user: Callable[..., User]) -> User:
    return make_user("Manager")


def test_a_worker_killed_mid_broadcast_leaves_each_recipient_one_message(manager):
    broadcast = create(manager, clients(1600, "kill"))
    doomed = start_worker(ready=True)
    try:
        wait_for(lambda: sent(broadcast) > 0, "the first batch")
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=30)
    finally:
        stop(doomed)
    assert status(broadcast) == "sending", "the worker finished before it was killed"
    assert_exactly_once(broadcast)  # the batch it was writing left nothing behind
    rescuer = start_worker(ready=True)
    try:
        wait_for(lambda: status(broadcast) == "completed", "the broadcast completed")
    finally:
        stop(rescuer)
    assert_exactly_once(broadcast)
    assert broadcast.sent == 1600


def test_two_workers_on_one_broadcast_send_each_message_once(manager):
    workers = [start_worker(ready=True), start_worker(ready=True)]
    try:
        broadcast = create(manager, clients(2000, "two"))
        wait_for(lambda: status(broadcast) == "completed", "the broadcast completed")
    finally:
        for worker in workers:
            stop(worker)
    assert_exactly_once(broadcast)
    assert broadcast.sent == 2000


def test_nothing_is_written_after_cancel_returns(manager):
    worker = start_worker(ready=True)
    try:
        broadcast = create(manager, clients(2000, "cancel"))
        wait_for(lambda: sent(broadcast) > 0, "the first batch")
        cancelled = broadcast_cancel(actor=manager, broadcast_id=broadcast.pk)
        written_then = Message.objects.filter(broadcast_id=broadcast.pk).count()
        assert cancelled.status == "cancelled"
        assert cancelled.sent == written_then
        assert cancelled.cancelled > 0, "the worker finished before the cancel"
        # The worker goes on writing other broadcasts: one created after the cancel completes,
        # so the worker ran its batches since.
        after = create(manager, clients(3, "after"))
        wait_for(lambda: status(after) == "completed", "a later broadcast completed")
    finally:
        stop(worker)
    assert Message.objects.filter(broadcast_id=broadcast.pk).count() == written_then
    assert_exactly_once(broadcast)
    broadcast.refresh_from_db()
    assert broadcast.status == "cancelled"
    assert broadcast.sent + broadcast.cancelled == 2000
